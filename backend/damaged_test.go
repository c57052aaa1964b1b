package backend_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// TestDamagedRootRowHidesNoOtherRoot: a roots row whose top entry does not
// decode gives EIO where that root is read; the namespace still lists and
// serves every other root, the damaged root's other versions included,
// and check names it.
func TestDamagedRootRowHidesNoOtherRoot(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"f": []byte("healthy")}, nil)
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s := storeAt(t, path)
	for _, id := range []string{"a@1", "b@1", "b@2"} {
		ingestDir(t, s, id, src)
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.Execute(c, `UPDATE roots SET top = x'00' WHERE name = 'b' AND version = '2'`, nil)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	v := backend.OpenNamespace(s.Objects)
	names := func(p string) []string {
		t.Helper()
		n, err := v.Walk(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ns, err := v.ReadDir(ctx, n)
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		var out []string
		for _, n := range ns {
			out = append(out, n.Name)
		}
		return out
	}
	if got := names(""); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("top lists %q", got)
	}
	if got := names("b"); !slices.Equal(got, []string{"1", "2", "latest"}) {
		t.Fatalf("b lists %q", got)
	}
	for _, p := range []string{"a/1/f", "b/1/f", "a/latest/f"} {
		if got, err := v.FS().ReadFile(p); err != nil || string(got) != "healthy" {
			t.Fatalf("%s: %q, %v", p, got, err)
		}
	}
	for _, p := range []string{"b/2/f", "b/latest/f"} {
		_, err := v.FS().ReadFile(p)
		if !errors.Is(err, store.ErrCorrupt) || backend.Errno(err) != syscall.EIO {
			t.Fatalf("%s: %v, want a corruption error (EIO)", p, err)
		}
	}
	if _, err := v.Walk(ctx, "b/2"); backend.Errno(err) != syscall.EIO {
		t.Fatalf("looking up b/2: %v, want EIO", err)
	}
	if n := mustWalk(t, v, "b/latest"); n.Target != "2" {
		t.Fatalf("b/latest -> %q, want the damaged newest version", n.Target)
	}
	rep, err := s.Check(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Name != "b@2" || !errors.Is(rep.Problems[0].Err, store.ErrCorrupt) {
		t.Fatalf("check problems: %v, want one naming b@2", rep.Problems)
	}
}

func mustWalk(t *testing.T, v *backend.View, p string) *backend.Node {
	t.Helper()
	n, err := v.Walk(context.Background(), p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return n
}
