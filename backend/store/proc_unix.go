//go:build unix && !linux

package store

import "syscall"

// processExists reports whether a process with pid exists (signal 0 checks
// without sending; EPERM means it exists under another user).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
