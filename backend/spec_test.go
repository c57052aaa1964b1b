package backend_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend"
)

// TestOpenWithinFailsClosed: a one-root view that does not know its spec
// (opened by OpenRoot, not OpenSpec) is a limit nothing passes; Errno
// gives the documented codes.
func TestOpenWithinFailsClosed(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a/f": []byte("x")}, nil)
	ingestDir(t, s, "x@1", dir)
	ingestDir(t, s, "y@1", dir)
	ctx := context.Background()
	if _, err := backend.OpenWithin(ctx, openRoot(t, s, "x@1"), "x@1"); !errors.Is(err, backend.ErrOutside) || backend.Errno(err) != syscall.EACCES {
		t.Errorf("x@1 within OpenRoot(x@1): %v, want ErrOutside (EACCES)", err)
	}
	lim, err := backend.OpenSpec(ctx, s.Objects, "x@1")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := backend.OpenWithin(ctx, lim, "x@1/a"); err != nil || v.Root().Name != "" {
		t.Errorf("x@1/a within x@1: %v", err)
	}
	if _, err := backend.OpenWithin(ctx, lim, "y@1"); backend.Errno(err) != syscall.EACCES {
		t.Errorf("y@1 within x@1: %v, want EACCES", err)
	}
	if _, err := backend.OpenWithin(ctx, lim, "x@1//a"); !errors.Is(err, backend.ErrBadSpec) || backend.Errno(err) != syscall.EINVAL {
		t.Errorf("x@1//a: %v, want ErrBadSpec (EINVAL)", err)
	}
}
