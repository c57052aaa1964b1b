package store

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// self identifies this process: pid, start time and boot id.
func self() (proc, error) {
	boot, err := bootID()
	if err != nil {
		return proc{}, err
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return proc{}, err
	}
	return proc{pid: os.Getpid(), start: start, boot: boot}, nil
}

// bootID is the kernel's id of this boot.
func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// procStart returns a process's start time from /proc/PID/stat.
func procStart(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strconv.ParseInt(f[19], 10, 64) // field 22: the third is field 3
}

// alive reports whether the process a lease names still runs: same boot,
// and a process with that pid and start time.
func alive(pid int, start int64, boot string) bool {
	b, err := bootID()
	if err != nil || b != boot {
		return false
	}
	st, err := procStart(pid)
	return err == nil && st == start
}
