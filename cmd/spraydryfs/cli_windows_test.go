package main

import (
	"os/exec"
	"testing"
)

// asNobody skips the test: Windows has no user ids to switch to.
func asNobody(t *testing.T, _ *exec.Cmd) {
	t.Skip("no user ids on Windows")
}
