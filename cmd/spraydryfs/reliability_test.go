package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Files under /proc/sys stat as empty and read as text: to ingest they are
// files that change while being read, every time.
func TestIngestOfChangingFilesFails(t *testing.T) {
	const src = "/proc/sys/kernel/random"
	if _, err := os.Stat(filepath.Join(src, "boot_id")); err != nil {
		t.Skip("no", src)
	}
	st := filepath.Join(t.TempDir(), "s.sdfs")
	r := cli(t, "-s", st, "ingest", "p@1", src)
	wantFail(t, r, 1, "kept changing while being read")
	if !strings.Contains(r.stderr, src+"/") {
		t.Errorf("error does not name the file: %q", r.stderr)
	}
	if r := cli(t, "-s", st, "roots"); strings.Contains(r.stdout, "p@1") {
		t.Fatalf("a failed ingest left a root:\n%s", r.stdout)
	}
	r = cli(t, "-s", st, "ingest", "--allow-changing", "p@1", src)
	if r.code != 0 || !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, src+"/boot_id") {
		t.Fatalf("ingest --allow-changing: %+v", r)
	}
	if r := cli(t, "-s", st, "cat", "p@1/poolsize"); r.code != 0 || r.stdout == "" {
		t.Fatalf("cat of what --allow-changing stored: %+v", r)
	}
}
