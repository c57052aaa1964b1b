package ingest

// fileStat is what ingest needs of lstat(2), the same on every platform
// (stat_unix.go and stat_windows.go fill it in). Mode holds the file type
// in the POSIX encoding (the s* constants) and the permission bits; Rdev is
// in tree's encoding (tree.Mkdev).
type fileStat struct {
	Mode     uint32
	Uid, Gid uint32
	Size     int64
	MTime    int64 // nanoseconds since the Unix epoch
	CTime    int64 // status change, likewise; 0 where the platform has none
	Dev, Ino uint64
	Nlink    uint64
	Rdev     uint64
}

// The POSIX file type bits of fileStat.Mode, the same on every Unix.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
)
