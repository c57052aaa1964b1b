//go:build linux

package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// unavailable skips a test that cannot run here, saying why; in CI (CI set)
// it fails instead, so no suite silently skips there. An empty reason
// means the test can run.
func unavailable(t *testing.T, what, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s cannot run: %s", what, reason)
	}
	t.Skipf("%s skipped: %s", what, reason)
}

// missingTools names the tools not on PATH, with the install hint, or "".
func missingTools(hint string, tools ...string) string {
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "missing " + strings.Join(missing, ", ") + " (" + hint + ")"
}
