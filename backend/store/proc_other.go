//go:build !linux

package store

import "os"

// self identifies this process by its pid alone: without /proc there is
// no start time or boot id to tell a reused pid from the lease's process.
func self() (proc, error) { return proc{pid: os.Getpid()}, nil }

// alive reports whether a process with the lease's pid exists. A reused
// pid keeps the lease alive, which only makes gc wait: it never sweeps
// under a running ingest.
func alive(pid int, _ int64, _ string) bool { return processExists(pid) }
