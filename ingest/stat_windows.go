package ingest

import (
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// openFlags open a file to read (Windows has no O_NOFOLLOW).
const openFlags = os.O_RDONLY

// lstat fills st from os.Lstat of p and, for regular files, the volume,
// file index and link count that hard links and the reuse index need.
func lstat(p string, st *fileStat) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	return fromFileInfo(p, fi, false, st)
}

// stat is lstat following symlinks.
func stat(p string, st *fileStat) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return fromFileInfo(p, fi, true, st)
}

// fstat fills st from the open file f (Windows keeps no status-change
// time that Go exposes: CTime stays 0, and a change shows in size or mtime).
func fstat(f *os.File, st *fileStat) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return fromFileInfo(f.Name(), fi, true, st)
}

// fromFileInfo converts fi. Windows has no owners or device numbers, and
// its modes are what Go makes of the read-only attribute (0666 or 0444,
// directories 0777 or 0555).
func fromFileInfo(p string, fi fs.FileInfo, follow bool, st *fileStat) error {
	m := fi.Mode()
	*st = fileStat{Mode: uint32(m.Perm()), Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Nlink: 1}
	switch {
	case m.IsRegular():
		st.Mode |= sIFREG
	case m.IsDir():
		st.Mode |= sIFDIR
	case m&fs.ModeSymlink != 0:
		st.Mode |= sIFLNK
	case m&fs.ModeNamedPipe != 0:
		st.Mode |= sIFIFO
	case m&fs.ModeSocket != 0:
		st.Mode |= sIFSOCK
	case m&fs.ModeCharDevice != 0:
		st.Mode |= sIFCHR
	case m&fs.ModeDevice != 0:
		st.Mode |= sIFBLK
	}
	if !m.IsRegular() {
		return nil
	}
	return fileID(p, follow, st)
}

// fileID sets st's Dev, Ino and Nlink from the file's volume serial
// number, file index and link count.
func fileID(p string, follow bool, st *fileStat) error {
	name, err := syscall.UTF16PtrFromString(p)
	if err != nil {
		return err
	}
	attrs := uint32(syscall.FILE_FLAG_BACKUP_SEMANTICS)
	if !follow {
		attrs |= syscall.FILE_FLAG_OPEN_REPARSE_POINT
	}
	h, err := syscall.CreateFile(name, 0, syscall.FILE_SHARE_READ|syscall.FILE_SHARE_WRITE|syscall.FILE_SHARE_DELETE,
		nil, syscall.OPEN_EXISTING, attrs, 0)
	if err != nil {
		return &fs.PathError{Op: "CreateFile", Path: p, Err: err}
	}
	defer syscall.CloseHandle(h)
	var d syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(h, &d); err != nil {
		return &fs.PathError{Op: "GetFileInformationByHandle", Path: p, Err: err}
	}
	st.Dev = uint64(d.VolumeSerialNumber)
	st.Ino = uint64(d.FileIndexHigh)<<32 | uint64(d.FileIndexLow)
	st.Nlink = uint64(d.NumberOfLinks)
	return nil
}

// warnDropped says, once per ingest, what Windows cannot give.
func warnDropped(log *slog.Logger) {
	log.Warn("ingest on windows: owners, extended attributes and alternate data streams are not recorded; " +
		"modes are only the read-only attribute")
}

// readXattrs returns no extended attributes: Windows has none that
// SprayDryFS reads.
func readXattrs(string) ([]tree.Xattr, error) { return nil, nil }
