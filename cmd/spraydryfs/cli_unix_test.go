//go:build !windows

package main

import (
	"os/exec"
	"syscall"
	"testing"
)

// asNobody makes cmd run as user and group 65534.
func asNobody(_ *testing.T, cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}
