package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gcStore ingests versions g@1 … g@n of 2,000 small files, each version
// editing every file (so each version's chunks are deltas against the
// previous one's), and returns the store and each version's files.
func gcStore(t *testing.T, n int) (string, []map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	var vs []map[string][]byte
	for v := 1; v <= n; v++ {
		files := map[string][]byte{}
		for i := range 2000 {
			b := noise(3000, uint64(i))
			copy(b[100*v:], fmt.Sprintf("version %d of file %d", v, i))
			files[fmt.Sprintf("d%02d/f%04d", i%20, i)] = b
		}
		src := filepath.Join(dir, fmt.Sprint("src", v))
		writeFiles(t, src, files)
		if r := cli(t, "-s", st, "ingest", fmt.Sprintf("g@%d", v), src); r.code != 0 {
			t.Fatalf("ingest g@%d: %+v", v, r)
		}
		vs = append(vs, files)
	}
	return st, vs
}

// TestGCKilledAtEveryStage kills gc with SIGKILL while it marks, re-dries,
// sweeps listings and sweeps chunks: each time check --read-data is clean
// and the remaining versions read byte-exact, and a last run frees the
// rest, leaving nothing unneeded.
func TestGCKilledAtEveryStage(t *testing.T) {
	st, vs := gcStore(t, 5)
	if r := cli(t, "-s", st, "rm", "g@1", "g@2", "g@3"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	dirs, chunks := query(st, `SELECT count(*) FROM dirs`), committedChunks(st)
	plain := func() int64 { return query(st, `SELECT count(*) FROM chunks WHERE ref IS NULL`) }
	plain0 := plain()
	stages := []struct {
		name string
		when func() bool
	}{
		{"marking", func() bool { return true }},
		{"re-drying", func() bool { return plain() > plain0 }},
		{"after the listings", func() bool { return query(st, `SELECT count(*) FROM dirs`) < dirs }},
		{"sweeping chunks", func() bool { return committedChunks(st) < chunks-1000 }},
	}
	killed := 0
	for _, stage := range stages {
		cmd := command("-s", st, "gc")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !stage.when() {
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed++
		} else {
			t.Logf("gc finished before the kill %s", stage.name)
		}
		if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
			t.Fatalf("check after a kill %s: %+v", stage.name, r)
		}
	}
	if killed == 0 {
		t.Fatal("gc was never killed: the test needs more data")
	}
	r := cli(t, "-s", st, "gc")
	if r.code != 0 || !strings.Contains(r.stdout, "freed") {
		t.Fatalf("gc after the kills: %+v", r)
	}
	if r := cli(t, "-s", st, "gc", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would free 0 B") {
		t.Fatalf("gc --dry-run after the last gc: %+v", r)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after the last gc: %+v", r)
	}
	for v := 4; v <= 5; v++ {
		for _, p := range []string{"d00/f0000", "d07/f1007", "d19/f1999"} {
			if r := cli(t, "-s", st, "cat", fmt.Sprintf("g@%d/%s", v, p)); r.code != 0 || !bytes.Equal([]byte(r.stdout), vs[v-1][p]) {
				t.Fatalf("cat g@%d/%s after gc: %d bytes, %s", v, p, len(r.stdout), r.stderr)
			}
		}
	}
}

// TestGCCommand: usage errors, --dry-run changes nothing, gc reports what
// it freed and re-dried, and --compact leaves no free page in the file.
func TestGCCommand(t *testing.T) {
	st, _ := gcStore(t, 3)
	wantFail(t, cli(t, "-s", st, "gc", "x"), 2, "unknown command")
	wantFail(t, cli(t, "-s", st, "gc", "--compact", "--dry-run"), 2, "exclude each other")
	if r := cli(t, "-s", st, "rm", "g@1"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	before := committedChunks(st)
	r := cli(t, "-s", st, "gc", "--dry-run")
	// g@2's 2000 chunks are dried against g@1's, and some of its 21
	// listings against g@1's (20 or 21 of them: seen to vary between runs,
	// cause not found).
	var redry int
	if i := strings.Index(r.stdout, "would re-dry "); i >= 0 {
		fmt.Sscanf(r.stdout[i:], "would re-dry %d live objects", &redry)
	}
	if r.code != 0 || !strings.Contains(r.stdout, "would free") || redry < 2000 || redry > 2021 || committedChunks(st) != before {
		t.Fatalf("gc --dry-run: %+v", r)
	}
	r = cli(t, "-s", st, "gc", "--compact")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("re-dried %d live objects", redry)) || !strings.Contains(r.stdout, "compacted") || committedChunks(st) >= before {
		t.Fatalf("gc --compact: %+v", r)
	}
	if n := query(st, `PRAGMA freelist_count`); n != 0 {
		t.Errorf("%d free pages after gc --compact", n)
	}
	if n := query(st, `PRAGMA auto_vacuum`); n != 2 {
		t.Errorf("auto_vacuum %d after gc --compact, want 2 (incremental)", n)
	}
}

// TestGCAfterKilledIngest: an ingest killed with SIGKILL leaves its lease
// behind; gc sees its process is gone, does not wait, and frees what the
// ingest had committed, leaving a store that passes check --read-data.
func TestGCAfterKilledIngest(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := map[string][]byte{}
	for i := range 48 {
		files[fmt.Sprintf("d/f%02d", i)] = noise(1<<20, uint64(i))
	}
	writeFiles(t, src, files)
	cli(t, "-s", st, "ingest", "k@0", t.TempDir())
	cmd := command("-s", st, "ingest", "k@1", src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && committedChunks(st) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Fatal("ingest finished before it could be killed: the test needs more data")
	}
	if n := query(st, `SELECT count(*) FROM leases`); n != 1 {
		t.Fatalf("%d leases after the kill, want the killed ingest's", n)
	}
	start := time.Now()
	r := cli(t, "-s", st, "gc")
	if r.code != 0 || strings.Contains(r.stderr, "waiting") || strings.Contains(r.stdout, "freed 0 B") || time.Since(start) > 20*time.Second {
		t.Fatalf("gc after a killed ingest: %+v", r)
	}
	if n := query(st, `SELECT count(*) FROM leases`) + committedChunks(st); n != 0 {
		t.Errorf("%d leases and chunks left, want none", n)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after gc: %+v", r)
	}
}
