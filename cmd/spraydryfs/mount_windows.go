package main

import (
	"errors"
	"log/slog"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/frontends/report"
)

// mountOptions mirror the FUSE frontend's, which does not build here, so
// that the mount command keeps its flags.
type mountOptions struct {
	AllowOther  bool
	UID, GID    *uint32
	FsName      string
	Extra       []string
	ReadDirPlus bool
	Log         *slog.Logger
	Debug       bool
	Report      report.Reporter
}

// mountFUSE fails: Windows has no FUSE.
func mountFUSE(string, *backend.View, mountOptions) (fuseServer, error) {
	return nil, errors.New("mount: not supported on this platform: use serve webdav")
}
