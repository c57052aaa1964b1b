package extract

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// windowsNames: names are rewritten where Windows cannot hold them.
const windowsNames = true

// unsupported names the entry types Windows cannot create.
func unsupported(t tree.Type) string {
	switch t {
	case tree.TypeFIFO:
		return "FIFOs"
	case tree.TypeCharDev, tree.TypeBlockDev:
		return "device nodes"
	}
	return ""
}

func mkfifo(string) error { return errors.ErrUnsupported }

func mknod(string, bool, uint64) error { return errors.ErrUnsupported }

func lchown(string, uint32, uint32) error { return errors.ErrUnsupported }

func lsetxattr(string, string, []byte) error { return errors.ErrUnsupported }

// chmod keeps what Windows can: the read-only attribute.
func chmod(path string, mode uint32) error { return os.Chmod(path, fs.FileMode(mode&0o777)) }

// setMtime sets path's access and modification times, not following a
// symlink (os.Chtimes would).
func setMtime(path string, ns int64) error {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	h, err := syscall.CreateFile(p, syscall.FILE_WRITE_ATTRIBUTES,
		syscall.FILE_SHARE_READ|syscall.FILE_SHARE_WRITE|syscall.FILE_SHARE_DELETE, nil, syscall.OPEN_EXISTING,
		syscall.FILE_FLAG_BACKUP_SEMANTICS|syscall.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return err
	}
	defer syscall.CloseHandle(h)
	ft := syscall.NsecToFiletime(ns)
	return syscall.SetFileTime(h, nil, &ft, &ft)
}

// errPrivilegeNotHeld is ERROR_PRIVILEGE_NOT_HELD: creating symlinks needs
// SeCreateSymbolicLinkPrivilege or Developer Mode.
const errPrivilegeNotHeld = syscall.Errno(1314)

// symlinkDenied reports whether a symlink could not be created for lack of
// that right.
func symlinkDenied(err error) bool {
	return errors.Is(err, errPrivilegeNotHeld) || errors.Is(err, fs.ErrPermission)
}
