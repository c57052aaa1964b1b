//go:build darwin || freebsd

package layout

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncEachObject: objects are written without fsync, and syncFS flushes
// them all before the index names them.
const syncEachObject = false

// syncFS flushes every file system (these systems have no syncfs).
func syncFS(*os.File) error { return unix.Sync() }
