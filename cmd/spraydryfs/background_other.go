//go:build !unix

package main

import (
	"context"
	"errors"
)

// isDaemonChild reports whether this process is a background server:
// never here.
func isDaemonChild() bool { return false }

// detachFromParent has no parent to report to here.
func detachFromParent() error { return nil }

// goBackground refuses background serving, which needs Unix sessions.
func goBackground(_ context.Context, on bool) error {
	if on {
		return usageError{errors.New("mount --background is not supported on this system")}
	}
	return nil
}
