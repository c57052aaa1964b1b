package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// textFiles returns n source-like files of about size bytes under dir/.
func textFiles(dir string, n, size int, seed uint64) map[string][]byte {
	words := strings.Fields("func return err nil package import struct interface context string int64 byte range append kubernetes")
	files := map[string][]byte{}
	for i := range n {
		var b bytes.Buffer
		r := rand.New(rand.NewPCG(uint64(i), seed))
		for b.Len() < size {
			b.WriteString(words[r.IntN(len(words))] + " \n"[r.IntN(2):][:1])
		}
		files[filepath.Join(dir, fmt.Sprintf("f%03d.go", i))] = b.Bytes()
	}
	return files
}

// edited returns files with a line inserted in the middle of each.
func edited(files map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for p, b := range files {
		mid := len(b) / 2
		out[p] = append(append(append([]byte{}, b[:mid]...), "// changed in the new version\n"...), b[mid:]...)
	}
	return out
}

type ingestJSON struct {
	NewChunks   int64 `json:"new_chunks"`
	DeltaChunks int64 `json:"delta_chunks"`
	StoredBytes int64 `json:"stored_bytes"`
}

func ingestJSONOf(t *testing.T, args ...string) ingestJSON {
	t.Helper()
	r := cli(t, append([]string{"ingest", "--json"}, args...)...)
	var res ingestJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("ingest %v: %+v", args, r)
	}
	return res
}

func TestDeltaIngestParentAndRecompress(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	v1 := textFiles("src", 40, 30<<10, 1)
	writeFiles(t, filepath.Join(dir, "v1"), v1)
	writeFiles(t, filepath.Join(dir, "v2"), edited(v1))
	first := ingestJSONOf(t, "-s", st, "k@1", filepath.Join(dir, "v1"))

	second := ingestJSONOf(t, "-s", st, "k@2", filepath.Join(dir, "v2"))
	if second.DeltaChunks == 0 || second.StoredBytes*4 > first.StoredBytes {
		t.Fatalf("second version: %+v, first %+v: want deltas, a quarter the size or less", second, first)
	}
	// --parent names the version to delta against for another name.
	if r := ingestJSONOf(t, "-s", st, "--parent", "k@1", "--no-reuse", "other@1", filepath.Join(dir, "v2")); r.NewChunks != 0 {
		t.Fatalf("identical content stored again: %+v", r)
	}
	wantFail(t, cli(t, "-s", st, "ingest", "--parent", "nope@1", "x@1", filepath.Join(dir, "v1")), 1, "parent nope@1")
	wantFail(t, cli(t, "-s", st, "ingest", "--delta-depth", "0", "x@1", filepath.Join(dir, "v1")), 2, "--delta-depth")

	// --no-delta stores new chunks on their own; recompress --delta turns
	// them into deltas afterwards.
	plain := filepath.Join(dir, "plain.sdfs")
	ingestJSONOf(t, "-s", plain, "k@1", filepath.Join(dir, "v1"))
	if r := ingestJSONOf(t, "-s", plain, "--no-delta", "k@2", filepath.Join(dir, "v2")); r.DeltaChunks != 0 {
		t.Fatalf("--no-delta stored %d delta chunks", r.DeltaChunks)
	}
	r := cli(t, "-s", plain, "recompress", "--delta")
	if r.code != 0 || !strings.Contains(r.stdout, "re-dried 2 roots") || strings.Contains(r.stdout, " 0 rewritten") {
		t.Fatalf("recompress --delta: %+v", r)
	}
	if r := cli(t, "-s", plain, "recompress", "--delta"); !strings.Contains(r.stdout, " 0 rewritten") {
		t.Fatalf("second recompress --delta found work left: %+v", r)
	}
	// Version deltas only (codec 2): which first-version files were dried
	// against a neighbour (codec 3) depends on the order workers finish.
	const versionDeltas = `SELECT count(*) FROM chunks WHERE codec = 2`
	if got, want := query(plain, versionDeltas), query(st, versionDeltas); got < want || want == 0 {
		t.Fatalf("recompress made %d delta chunks, ingest %d", got, want)
	}
	for _, s := range []string{st, plain} {
		if r := cli(t, "-s", s, "check", "--read-data"); r.code != 0 {
			t.Fatalf("check %s: %+v", s, r)
		}
		if r := cli(t, "-s", s, "stats"); !strings.Contains(r.stdout, "delta chunks") {
			t.Fatalf("stats shows no delta chunks:\n%s", r.stdout)
		}
		for p, want := range edited(v1) {
			if r := cli(t, "-s", s, "cat", "k@2/"+p); r.stdout != string(want) {
				t.Fatalf("%s: k@2/%s differs", s, p)
			}
		}
	}
	wantFail(t, cli(t, "-s", st, "recompress", "--delta", "--dict", "d@1"), 2, "exactly one")
}

func TestKilledDeltaIngestLeavesConsistentStore(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	// Edited text first in name order, then 32 MiB of noise, so that batches
	// holding deltas commit (every 8 MiB) while the ingest still runs.
	v1 := textFiles("a", 32, 200<<10, 2)
	v2 := edited(v1)
	for i := range 32 {
		v2[fmt.Sprintf("z/%02d", i)] = noise(1<<20, uint64(i))
	}
	writeFiles(t, filepath.Join(dir, "v1"), v1)
	writeFiles(t, filepath.Join(dir, "v2"), v2)
	ingestJSONOf(t, "-s", st, "k@1", filepath.Join(dir, "v1"))

	cmd := command("-s", st, "ingest", "k@2", filepath.Join(dir, "v2"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && query(st, `SELECT count(*) FROM chunks WHERE depth > 0`) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Fatal("ingest finished before it could be killed: the test needs more data")
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after kill: %+v", r)
	}
	if r := cli(t, "-s", st, "roots"); strings.Contains(r.stdout, "k@2") {
		t.Fatalf("killed ingest left a root:\n%s", r.stdout)
	}
	ingestJSONOf(t, "-s", st, "k@2", filepath.Join(dir, "v2"))
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after re-run: %+v", r)
	}
	for p, want := range v2 {
		if r := cli(t, "-s", st, "cat", "k@2/"+p); r.stdout != string(want) {
			t.Fatalf("k@2/%s differs", p)
		}
	}
}
