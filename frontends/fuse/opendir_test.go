//go:build !windows

package fuse

import (
	"testing"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
)

// openDirFS records OPENDIRs that reach it.
type openDirFS struct {
	gofuse.RawFileSystem
	opens int
}

func (f *openDirFS) OpenDir(<-chan struct{}, *gofuse.OpenIn, *gofuse.OpenOut) gofuse.Status {
	f.opens++
	return gofuse.OK
}

// TestOpenDirWithoutTheCapability: a kernel that opens directories
// without a message gets ENOSYS for OPENDIR; one that cannot (before
// Linux 5.1, where ENOSYS would fail every opendir) has it answered.
func TestOpenDirWithoutTheCapability(t *testing.T) {
	inner := &openDirFS{RawFileSystem: gofuse.NewDefaultRawFileSystem()}
	f := &noOpendir{RawFileSystem: inner}
	if st := f.OpenDir(nil, &gofuse.OpenIn{}, &gofuse.OpenOut{}); st != gofuse.OK || inner.opens != 1 {
		t.Errorf("without the capability: %v, %d opens answered; want OK, 1", st, inner.opens)
	}
	f.on = true
	if st := f.OpenDir(nil, &gofuse.OpenIn{}, &gofuse.OpenOut{}); st != gofuse.ENOSYS || inner.opens != 1 {
		t.Errorf("with it: %v, %d opens answered; want ENOSYS, 1", st, inner.opens)
	}
}
