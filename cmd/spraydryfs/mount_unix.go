//go:build !windows

package main

import (
	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/frontends/fuse"
)

// mountOptions are the FUSE frontend's.
type mountOptions = fuse.Options

// mountFUSE mounts v at dir.
func mountFUSE(dir string, v *backend.View, opt mountOptions) (fuseServer, error) {
	s, err := fuse.Mount(dir, v, opt)
	if err != nil {
		return nil, err
	}
	return s, nil
}
