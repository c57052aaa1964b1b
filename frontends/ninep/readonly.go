package ninep

import (
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// Every call that would change the tree answers EROFS (p9's templates
// answer ENOSYS or ENOTDIR for some of these). templatefs.ReadOnlyFile,
// embedded in file, covers SetAttr, Remove, Rename and WriteAt.

// Create implements p9.File.Create.
func (f *file) Create(string, p9.OpenFlags, p9.FileMode, p9.UID, p9.GID) (p9.File, p9.QID, uint32, error) {
	return nil, p9.QID{}, 0, linux.EROFS
}

// Mkdir implements p9.File.Mkdir.
func (f *file) Mkdir(string, p9.FileMode, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EROFS
}

// Symlink implements p9.File.Symlink.
func (f *file) Symlink(string, string, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EROFS
}

// Link implements p9.File.Link.
func (f *file) Link(p9.File, string) error { return linux.EROFS }

// Mknod implements p9.File.Mknod.
func (f *file) Mknod(string, p9.FileMode, uint32, uint32, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EROFS
}

// RenameAt implements p9.File.RenameAt.
func (f *file) RenameAt(string, p9.File, string) error { return linux.EROFS }

// UnlinkAt implements p9.File.UnlinkAt.
func (f *file) UnlinkAt(string, uint32) error { return linux.EROFS }

// SetXattr implements p9.File.SetXattr (p9 calls it when the xattr fid is
// clunked).
func (f *file) SetXattr(string, []byte, p9.XattrFlags) error { return linux.EROFS }

// RemoveXattr implements p9.File.RemoveXattr.
func (f *file) RemoveXattr(string) error { return linux.EROFS }

// FSync implements p9.File.FSync: nothing to flush, as on any read-only
// file system.
func (f *file) FSync() error { return nil }
