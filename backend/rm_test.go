package backend_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/retain"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// TestRemovedRootVanishesFromViews removes a root while namespace and name
// views serve it: new lookups fail with ENOENT (never EIO), listings and
// latest no longer show it, and a file opened before keeps reading.
func TestRemovedRootVanishesFromViews(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	src := t.TempDir()
	files := sampleFiles()
	writeTree(t, src, files, nil)
	ingestDir(t, s, "r@1", src)
	writeTree(t, src, map[string][]byte{"small.txt": []byte("version 2\n")}, nil)
	ingestDir(t, s, "r@2", src)

	ns := backend.OpenNamespace(s.Objects)
	name, err := backend.OpenName(ctx, s.Objects, "r")
	if err != nil {
		t.Fatal(err)
	}
	n, err := ns.Walk(ctx, "r/2/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	open, err := ns.Open(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	want := files["big.bin"]
	got := make([]byte, len(want))
	if _, err := open.ReadAt(got[:1000], 0); err != nil {
		t.Fatal(err)
	}
	top, err := ns.Walk(ctx, "r/2")
	if err != nil {
		t.Fatal(err)
	}

	ref, _ := store.ParseRef("r@2", true)
	if _, err := s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref})); err != nil {
		t.Fatal(err)
	}

	for _, v := range []*backend.View{ns, name} {
		p := "2/small.txt"
		if v == ns {
			p = "r/" + p
		}
		_, err := v.Walk(ctx, p)
		if !errors.Is(err, fs.ErrNotExist) || backend.Errno(err) != syscall.ENOENT {
			t.Errorf("lookup %s after rm: %v (errno %v), want ENOENT", p, err, backend.Errno(err))
		}
	}
	if l, err := name.Walk(ctx, "latest"); err != nil || l.Target != "1" {
		t.Errorf("latest after rm: %+v, %v; want 1", l, err)
	}
	kids, err := name.ReadDir(ctx, name.Root())
	if err != nil || len(kids) != 2 || kids[0].Name != "1" || kids[1].Name != "latest" {
		t.Errorf("versions after rm: %v, %v", kids, err)
	}
	// What was opened or looked up before reads on: objects stay until gc.
	if _, err := open.ReadAt(got[1000:], 1000); err != nil || !bytes.Equal(got, want) {
		t.Errorf("open file after rm: %v, equal %v", err, bytes.Equal(got, want))
	}
	if _, err := ns.Lookup(ctx, top, "small.txt"); err != nil {
		t.Errorf("lookup below a node held from before rm: %v", err)
	}

	// The last version gone, the name goes too.
	ref.Version = "1"
	if _, err := s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref})); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Walk(ctx, "r"); backend.Errno(err) != syscall.ENOENT {
		t.Errorf("name without versions: %v, want ENOENT", err)
	}
	if kids, err := ns.ReadDir(ctx, ns.Root()); err != nil || len(kids) != 0 {
		t.Errorf("namespace after rm of everything: %v, %v", kids, err)
	}
	if _, err := name.ReadDir(ctx, name.Root()); backend.Errno(err) != syscall.ENOENT {
		t.Errorf("name view without versions: %v, want ENOENT", err)
	}
}

// TestNamespaceNodesFollowTheRoots holds namespace nodes across root
// changes, as FUSE holds one node per inode: a latest link and its
// name's directory answer for the roots of now, and a version removed and
// ingested again with other content is another inode (the same content,
// the same inode).
func TestNamespaceNodesFollowTheRoots(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	one, two := t.TempDir(), t.TempDir()
	writeTree(t, one, map[string][]byte{"f": []byte("one\n")}, nil)
	writeTree(t, two, map[string][]byte{"f": []byte("two\n")}, nil)
	ingestDir(t, s, "r@1", one)
	ns := backend.OpenNamespace(s.Objects)
	latest, err := ns.Walk(ctx, "r/latest")
	if err != nil {
		t.Fatal(err)
	}
	name, err := ns.Walk(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	old, err := ns.Walk(ctx, "r/1")
	if err != nil {
		t.Fatal(err)
	}

	ref, _ := store.ParseRef("r@1", true)
	if _, err := s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref})); err != nil {
		t.Fatal(err)
	}
	ingestDir(t, s, "r@1", two)
	ingestDir(t, s, "r@2", one)

	if target, err := ns.Readlink(ctx, latest); err != nil || target != "2" {
		t.Errorf("readlink of a latest node from before: %q, %v; want 2", target, err)
	}
	if c, err := ns.Current(ctx, latest); err != nil || c.Target != "2" || c.Size != 1 || c.Ino != latest.Ino {
		t.Errorf("latest node from before, now: %+v, %v", c, err)
	}
	if c, err := ns.Current(ctx, name); err != nil || c.MTime <= name.MTime {
		t.Errorf("name node from before, now: %+v, %v", c, err)
	}
	again, err := ns.Walk(ctx, "r/1")
	if err != nil {
		t.Fatal(err)
	}
	newest, err := ns.Walk(ctx, "r/2")
	if err != nil {
		t.Fatal(err)
	}
	if again.Ino == old.Ino {
		t.Errorf("r@1 ingested again with other content has the old inode %d", old.Ino)
	}
	if newest.Ino == old.Ino || newest.Ino == again.Ino {
		t.Errorf("inodes: old r/1 %d, r/1 %d, r/2 %d", old.Ino, again.Ino, newest.Ino)
	}
	ref.Version = "2"
	if _, err := s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref})); err != nil {
		t.Fatal(err)
	}
	ingestDir(t, s, "r@2", one)
	if same, err := ns.Walk(ctx, "r/2"); err != nil || same.Ino != newest.Ino {
		t.Errorf("r@2 ingested again with the same content: inode %d, %v; want %d", same.Ino, err, newest.Ino)
	}

	ref.Version = "1"
	s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref}))
	ref.Version = "2"
	s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref}))
	if _, err := ns.Current(ctx, name); backend.Errno(err) != syscall.ENOENT {
		t.Errorf("name node without versions: %v, want ENOENT", err)
	}
	if _, err := ns.Readlink(ctx, latest); backend.Errno(err) != syscall.ENOENT {
		t.Errorf("latest without versions: %v, want ENOENT", err)
	}
}

// TestWatchSeesRootChanges: Watch calls back once per change of the roots
// (an ingest, a removal), not while they stay, and returns at once for a
// view of one stored tree.
func TestWatchSeesRootChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStore(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"f": []byte("one\n")}, nil)
	ingestDir(t, s, "r@1", src)
	changes := make(chan struct{}, 10)
	go backend.OpenNamespace(s.Objects).Watch(ctx, 5*time.Millisecond, func() { changes <- struct{}{} })
	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-changes:
			if !want {
				t.Errorf("%s: a change was reported", what)
			}
		case <-time.After(300 * time.Millisecond):
			if want {
				t.Errorf("%s: no change was reported", what)
			}
		}
	}
	expect("nothing done", false)
	ingestDir(t, s, "r@2", src)
	expect("an ingest", true)
	expect("after it", false)
	ref, _ := store.ParseRef("r@1", true)
	if _, err := s.RemoveRoots(ctx, retain.Versions([]store.Ref{ref})); err != nil {
		t.Fatal(err)
	}
	expect("a removal", true)
	done := make(chan struct{})
	go func() { openRoot(t, s, "r@2").Watch(ctx, time.Millisecond, func() {}); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Watch of one root's view did not return")
	}
}
