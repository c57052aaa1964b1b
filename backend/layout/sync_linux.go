package layout

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncEachObject: objects are written without fsync, and syncFS flushes
// them all before the index names them.
const syncEachObject = false

// syncFS flushes the file system holding f.
func syncFS(f *os.File) error { return unix.Syncfs(int(f.Fd())) }
