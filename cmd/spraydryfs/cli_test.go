package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// cliBin is the spraydryfs command the tests run in subprocesses (exit
// codes, output, kill -9), built by TestMain.
var cliBin string

// TestMain builds the command once, without the race detector whatever
// this test binary has: the packages it is made of run their own tests
// under -race, and race-instrumented subprocesses made the ingest-heavy
// tests here five to ten times slower (over ten minutes in all). Without
// a go command the test binary stands in for it.
func TestMain(m *testing.M) {
	if os.Getenv("SPRAYDRYFS_AS_CLI") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "spraydryfs-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBin = filepath.Join(dir, "spraydryfs")
	// Remote stores read in the tests are cached here, not in $HOME.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	if out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
		if !errors.Is(err, exec.ErrNotFound) {
			fmt.Fprintf(os.Stderr, "build spraydryfs: %v\n%s", err, out)
			os.Exit(1)
		}
		cliBin = os.Args[0]
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(cliBin, args...)
	cmd.Env = append(os.Environ(), "SPRAYDRYFS_AS_CLI=1", "SPRAYDRYFS_STORE=")
	return cmd
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	cmd := command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r := result{out.String(), errb.String(), code}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("spraydryfs %v crashed:\n%s", args, r.stderr)
	}
	return r
}

// wantFail asserts exit code and a one-line error mentioning want.
func wantFail(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", r.code, r.stderr, code, want)
	}
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func noise(n int, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func TestErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})

	wantFail(t, cli(t, "roots"), 2, "no store given")
	wantFail(t, cli(t, "-s", st, "roots"), 1, "does not exist")
	if r := cli(t, "-s", st, "ingest", "a@1", src); r.code != 0 {
		t.Fatalf("ingest: %+v", r)
	}
	wantFail(t, cli(t, "-s", st, "ingest", "a@1", src), 1, "already exists")
	for _, bad := range []string{"a/b@1", "@1", "a@", "a@1@2", "a\x01@1", "a@latest", "a@..", "noversion"} {
		r := cli(t, "-s", st, "ingest", bad, src)
		if r.code == 0 || !strings.Contains(r.stderr, "spraydryfs:") {
			t.Errorf("ingest %q accepted: %+v", bad, r)
		}
	}
	wantFail(t, cli(t, "-s", st, "ingest", "b@1", filepath.Join(dir, "nope")), 1, "no such file")
	wantFail(t, cli(t, "-s", st, "cat", "zzz@1/f"), 1, "not found")
	wantFail(t, cli(t, "-s", st, "cat", "a@1/missing"), 1, "file does not exist")
	wantFail(t, cli(t, "-s", st, "cat", "a@1"), 1, "is a directory")
	wantFail(t, cli(t, "-s", st, "ls", "--bogus", "a@1"), 2, "unknown flag")
	wantFail(t, cli(t, "-s", st, "ls"), 2, "accepts 1 arg")
	wantFail(t, cli(t, "-s", st, "ingest", "c@1"), 2, "requires at least 2 arg")

	notStore := filepath.Join(dir, "text")
	os.WriteFile(notStore, []byte("just some text, not a database"), 0o644)
	wantFail(t, cli(t, "-s", notStore, "roots"), 1, "not a SprayDryFS store")
	wantFail(t, cli(t, "-s", src, "roots"), 1, "is a directory")

	c, err := sqlite.OpenConn(st, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	sqlitex.ExecuteTransient(c, "PRAGMA user_version=99", nil)
	c.Close()
	wantFail(t, cli(t, "-s", st, "roots"), 1, "schema version 99")
	wantFail(t, cli(t, "-s", st, "ingest", "a@2", src), 1, "schema version 99")
}

func TestListingCommands(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"a/b.txt": []byte("bee"), "top.txt": []byte("top")})
	os.Symlink("a/b.txt", filepath.Join(src, "ln"))
	cli(t, "-s", st, "ingest", "l@1", src)
	if r := cli(t, "-s", st, "cat", "l@1/ln"); r.stdout != "bee" {
		t.Fatalf("cat through symlink: %+v", r)
	}
	r := cli(t, "-s", st, "ls", "-l", "-R", "l@1")
	for _, want := range []string{"a/b.txt", "ln -> a/b.txt", "top.txt", "-rw-r--r--"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ls -lR lacks %q:\n%s", want, r.stdout)
		}
	}
	var roots []map[string]any
	if err := json.Unmarshal([]byte(cli(t, "-s", st, "roots", "--json").stdout), &roots); err != nil || len(roots) != 1 || roots[0]["files"] != 2.0 {
		t.Fatalf("roots --json: %v %v", roots, err)
	}
	var stats map[string]any
	if err := json.Unmarshal([]byte(cli(t, "-s", st, "stats", "--json").stdout), &stats); err != nil || stats["roots"] == nil {
		t.Fatalf("stats --json: %v %v", stats, err)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 || !strings.Contains(r.stdout, "OK") {
		t.Fatalf("check: %+v", r)
	}
}

func TestCorruptChunkNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	content := bytes.Repeat([]byte("precious data "), 40000) // several chunks
	writeFiles(t, src, map[string][]byte{"f": content, "g": []byte("fine")})
	cli(t, "-s", st, "ingest", "c@1", src)

	// Damage one stored chunk in the middle of the file.
	c, err := sqlite.OpenConn(st, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var data []byte
	sqlitex.Execute(c, `SELECT id, data FROM chunk_data ORDER BY length(data) DESC LIMIT 1`, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		id, data = s.ColumnInt64(0), make([]byte, s.ColumnLen(1))
		s.ColumnBytes(1, data)
		return nil
	}})
	data[len(data)/2] ^= 0x20
	if err := sqlitex.Execute(c, `UPDATE chunk_data SET data = ? WHERE id = ?`, &sqlitex.ExecOptions{Args: []any{data, id}}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	r := cli(t, "-s", st, "cat", "c@1/f")
	wantFail(t, r, 1, "corrupt chunk sha256:")
	if !bytes.HasPrefix(content, []byte(r.stdout)) || len(r.stdout) == len(content) {
		t.Fatalf("cat printed %d bytes that are not a proper prefix of the content", len(r.stdout))
	}
	if r := cli(t, "-s", st, "cat", "c@1/g"); r.code != 0 || r.stdout != "fine" {
		t.Fatalf("healthy file: %+v", r)
	}
	r = cli(t, "-s", st, "check", "--read-data")
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN chunk sha256:") {
		t.Fatalf("check --read-data: %+v", r)
	}
}

func TestKilledIngestLeavesConsistentStore(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := map[string][]byte{}
	for i := range 64 {
		files[filepath.Join("d", string(rune('a'+i%26)), strings.Repeat("x", i+1))] = noise(1<<20, uint64(i))
	}
	writeFiles(t, src, files)
	cli(t, "-s", st, "ingest", "k@0", t.TempDir()) // the store exists before the kill

	cmd := command("-s", st, "ingest", "k@1", src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the first batch has committed.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && committedChunks(st) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	if err == nil {
		t.Fatal("ingest finished before it could be killed: the test needs more data")
	}

	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after kill: %+v", r)
	}
	if r := cli(t, "-s", st, "roots"); strings.Contains(r.stdout, "k@1") {
		t.Fatalf("killed ingest left a root:\n%s", r.stdout)
	}
	before := committedBytes(st)
	if before == 0 {
		t.Fatal("no chunk committed before the kill")
	}
	var res struct {
		StoredBytes int64 `json:"stored_bytes"`
		Bytes       int64 `json:"bytes"`
	}
	r := cli(t, "-s", st, "ingest", "--json", "k@1", src)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("re-run: %+v", r)
	}
	// The data is incompressible: a re-run that reuses what the killed run
	// committed stores the rest and a little metadata.
	if res.StoredBytes > res.Bytes-before+(64<<10) {
		t.Fatalf("re-run stored %d of %d bytes although %d were committed before the kill", res.StoredBytes, res.Bytes, before)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after re-run: %+v", r)
	}
}

func committedChunks(path string) int64 { return query(path, `SELECT count(*) FROM chunks`) }

func committedBytes(path string) int64 {
	return query(path, `SELECT coalesce(sum(stored), 0) FROM chunks`)
}

func query(path, q string) int64 {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return 0
	}
	defer c.Close()
	var n int64
	sqlitex.Execute(c, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt64(0); return nil }})
	return n
}

func TestReuseAndNoReuse(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"a": []byte("aaa"), "b/c": []byte("ccc"), "d": noise(100<<10, 1)})
	readFiles := func(args ...string) float64 {
		t.Helper()
		var res map[string]any
		r := cli(t, append([]string{"-s", st, "ingest", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("ingest %v: %+v", args, r)
		}
		return res["read_files"].(float64)
	}
	if n := readFiles("r@1", src); n != 3 {
		t.Fatalf("first ingest read %v files", n)
	}
	if n := readFiles("r@2", src); n != 0 {
		t.Fatalf("unchanged files were read again: %v", n)
	}
	if n := readFiles("--no-reuse", "r@3", src); n != 3 {
		t.Fatalf("--no-reuse read %v files", n)
	}
	os.WriteFile(filepath.Join(src, "a"), []byte("AAAA"), 0o644)
	if n := readFiles("r@4", src); n != 1 {
		t.Fatalf("one changed file: %v files read", n)
	}
	if r := cli(t, "-s", st, "cat", "r@4/a"); r.stdout != "AAAA" {
		t.Fatalf("changed file: %q", r.stdout)
	}
}

func TestUnreadableFileAbortsIngest(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the command as another user")
	}
	// Everything the unprivileged run needs lives in a world-accessible
	// directory: the command, the store, the source.
	dir, err := os.MkdirTemp("", "unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	self, _ := os.ReadFile(cliBin)
	exe := filepath.Join(dir, "spraydryfs")
	os.WriteFile(exe, self, 0o755)
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"ok": []byte("fine"), "sub/secret": []byte("root only")})
	os.Chmod(filepath.Join(src, "sub/secret"), 0o600)
	st := filepath.Join(dir, "s.sdfs")

	cmd := exec.Command(exe, "-s", st, "ingest", "u@1", src)
	cmd.Env = append(os.Environ(), "SPRAYDRYFS_AS_CLI=1")
	asNobody(t, cmd)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	if err == nil || !strings.Contains(errb.String(), filepath.Join(src, "sub/secret")) || !strings.Contains(errb.String(), "permission denied") {
		t.Fatalf("ingest with an unreadable file: %v, %q", err, errb.String())
	}
	if r := cli(t, "-s", st, "roots"); strings.Contains(r.stdout, "u@1") {
		t.Fatalf("a failed ingest left a root:\n%s", r.stdout)
	}
	if r := cli(t, "-s", st, "check"); r.code != 0 {
		t.Fatalf("store after the failed ingest: %+v", r)
	}
}

func TestTrainDictsAndKilledRecompress(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := map[string][]byte{}
	words := strings.Fields("func return err nil package import struct interface context string int64 byte range append kubernetes")
	for i := range 3000 {
		var b bytes.Buffer
		r := rand.New(rand.NewPCG(uint64(i), 9))
		for b.Len() < 1500+i%1000 {
			b.WriteString(words[r.IntN(len(words))] + " ")
		}
		files[filepath.Join(fmt.Sprint(i%30), fmt.Sprintf("f%d.go", i))] = b.Bytes()
	}
	writeFiles(t, src, files)
	if r := cli(t, "-s", st, "ingest", "--no-delta", "k@1", src); r.code != 0 { // without deltas every chunk can take the dictionary
		t.Fatal(r)
	}
	wantFail(t, cli(t, "-s", st, "train", "tiny@1", filepath.Join(src, "0")), 1, "too little sample data")
	if r := cli(t, "-s", st, "train", "--size", "16KiB", "d@1", "root:k@1"); r.code != 0 || !strings.Contains(r.stdout, "trained d@1") {
		t.Fatalf("train: %+v", r)
	}
	wantFail(t, cli(t, "-s", st, "train", "--size", "16KiB", "d@1", src), 1, "already exists")
	wantFail(t, cli(t, "-s", st, "recompress", "k@1"), 2, "--dict")
	wantFail(t, cli(t, "-s", st, "dicts", "rm", "nope@1"), 1, "not found")

	cmd := command("-s", st, "recompress", "--dict", "d@1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && query(st, `SELECT count(*) FROM chunks WHERE dict != 0`) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Fatal("recompress finished before it could be killed: the test needs more chunks")
	}
	done := query(st, `SELECT count(*) FROM chunks WHERE dict != 0`)
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after a killed recompress: %+v", r)
	}
	if r := cli(t, "-s", st, "recompress", "--dict", "d@1"); r.code != 0 || strings.Contains(r.stdout, " 0 rewritten") {
		t.Fatalf("re-run after the kill (%d chunks were done): %+v", done, r)
	}
	if r := cli(t, "-s", st, "recompress", "--dict", "d@1"); r.code != 0 || !strings.Contains(r.stdout, " 0 rewritten") {
		t.Fatalf("third run found work left: %+v", r)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after recompress: %+v", r)
	}
	for p, want := range map[string][]byte{"0/f0.go": files["0/f0.go"], "29/f2999.go": files["29/f2999.go"]} {
		if r := cli(t, "-s", st, "cat", "k@1/"+p); r.stdout != string(want) {
			t.Fatalf("%s changed after recompress", p)
		}
	}
	wantFail(t, cli(t, "-s", st, "dicts", "rm", "d@1"), 1, "in use")
	if r := cli(t, "-s", st, "dicts", "default", "d@1"); r.code != 0 {
		t.Fatal(r)
	}
	var ds []map[string]any
	if err := json.Unmarshal([]byte(cli(t, "-s", st, "dicts", "--json").stdout), &ds); err != nil || len(ds) != 1 || ds[0]["default"] != true || ds[0]["chunks"].(float64) == 0 {
		t.Fatalf("dicts --json: %v %v", ds, err)
	}
}
