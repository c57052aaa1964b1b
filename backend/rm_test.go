package backend_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"syscall"
	"testing"

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
