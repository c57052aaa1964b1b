//go:build linux

package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// lsJSON runs ls --json and returns its objects by path.
func lsJSON(t *testing.T, args ...string) map[string]map[string]any {
	t.Helper()
	r := cli(t, append([]string{"ls", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("ls --json: %+v", r)
	}
	out := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("ls --json line %q: %v", line, err)
		}
		out[m["path"].(string)] = m
	}
	return out
}

func TestNonUTF8Names(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	bad := "bad\xffname"
	writeFiles(t, src, map[string][]byte{bad: []byte("bytes"), "d\xfe/f": []byte("in a bad dir")})
	os.Symlink("t\xfdrget", filepath.Join(src, "ln"))
	xattrs := unix.Setxattr(filepath.Join(src, bad), "user.v", []byte("\xff\x00x"), 0) == nil
	if r := cli(t, "-s", st, "ingest", "misc@1", src); r.code != 0 {
		t.Fatalf("ingest: %+v", r)
	}
	if r := cli(t, "-s", st, "cat", "misc@1/"+bad); r.code != 0 || r.stdout != "bytes" {
		t.Errorf("cat of a non-UTF-8 name: %+v", r)
	}
	if r := cli(t, "-s", st, "cat", "misc@1/d\xfe/f"); r.code != 0 || r.stdout != "in a bad dir" {
		t.Errorf("cat in a non-UTF-8 directory: %+v", r)
	}
	if _, err := store.ParseRef("misc@1/a\x00b", true); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("ParseRef accepted a NUL byte: %v", err)
	}
	wantFail(t, cli(t, "-s", st, "cat", "mi\xffsc@1/f"), 2, "not UTF-8")
	// Plain ls into a pipe writes names as their bytes, as ls(1) does.
	if r := cli(t, "-s", st, "ls", "misc@1"); !strings.Contains(r.stdout, bad+"\n") {
		t.Errorf("ls lost the name's bytes: %q", r.stdout)
	}
	b64 := base64.StdEncoding.EncodeToString
	all := lsJSON(t, "-s", st, "-R", "misc@1")
	var got map[string]any
	for _, m := range all {
		if m["path_base64"] == b64([]byte(bad)) {
			got = m
		}
	}
	if got == nil {
		t.Fatalf("no path_base64 for %q: %v", bad, all)
	}
	if got["path"] != strings.ToValidUTF8(bad, "\uFFFD") {
		t.Errorf("path %q", got["path"])
	}
	if xattrs {
		raw, _ := json.Marshal(got["xattrs_base64"])
		if want := `[{"name":"` + b64([]byte("user.v")) + `","value":"` + b64([]byte("\xff\x00x")) + `"}]`; string(raw) != want {
			t.Errorf("xattrs_base64 %s, want %s", raw, want)
		}
	}
	if m := all["ln"]; m == nil || m["target_base64"] != b64([]byte("t\xfdrget")) {
		t.Errorf("symlink target not lossless: %v", m)
	}
	if m := all["ln"]; m != nil && m["path_base64"] != nil {
		t.Errorf("base64 beside a UTF-8 name: %v", m)
	}
	for _, m := range all {
		if strings.HasPrefix(m["path"].(string), "d") && m["path_base64"] == nil {
			t.Errorf("no path_base64 for %v", m)
		}
	}
}

func TestLsLongModes(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"suid": nil, "sgid-nox": nil, "plain": nil})
	chmod := func(name string, mode uint32) {
		if err := syscall.Chmod(filepath.Join(src, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	chmod("suid", 0o4755)
	chmod("sgid-nox", 0o2644)
	for name, mode := range map[string]uint32{"tmp": 0o1777, "sticky-nox": 0o1776} {
		os.Mkdir(filepath.Join(src, name), 0o755)
		chmod(name, mode)
	}
	os.Symlink("plain", filepath.Join(src, "ln"))
	syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644)
	want := map[string]string{"suid": "-rwsr-xr-x", "sgid-nox": "-rw-r-Sr--", "plain": "-rw-r--r--", "tmp": "drwxrwxrwt",
		"sticky-nox": "drwxrwxrwT", "ln": "lrwxrwxrwx", "fifo": "prw-r--r--"}
	if os.Getuid() == 0 {
		if err := syscall.Mknod(filepath.Join(src, "chr"), syscall.S_IFCHR|0o620, int(unix.Mkdev(4, 1))); err == nil {
			chmod("chr", 0o620)
			want["chr"] = "crw--w----"
		}
		if err := syscall.Mknod(filepath.Join(src, "blk"), syscall.S_IFBLK|0o660, int(unix.Mkdev(8, 0))); err == nil {
			chmod("blk", 0o660)
			want["blk"] = "brw-rw----"
		}
	}
	if r := cli(t, "-s", st, "ingest", "m@1", src); r.code != 0 {
		t.Fatalf("ingest: %+v", r)
	}
	r := cli(t, "-s", st, "ls", "-l", "m@1")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		name := f[len(f)-1]
		if len(f) > 2 && f[len(f)-2] == "->" {
			name = f[len(f)-3]
		}
		got[name] = f[0]
	}
	for name, m := range want {
		if got[name] != m {
			t.Errorf("ls -l %s: mode %q, want %q\n%s", name, got[name], m, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "4, 1") && want["chr"] != "" {
		t.Errorf("ls -l shows no device number:\n%s", r.stdout)
	}

	// -d lists a directory itself, not its entries.
	r = cli(t, "-s", st, "ls", "-l", "-d", "m@1/tmp")
	if f := strings.Fields(r.stdout); r.code != 0 || strings.Count(r.stdout, "\n") != 1 || f[0] != "drwxrwxrwt" || f[len(f)-1] != "m@1/tmp" {
		t.Errorf("ls -l -d m@1/tmp: %+v", r)
	}
	r = cli(t, "-s", st, "ls", "-d", "m@1")
	if r.code != 0 || r.stdout != "m@1\n" {
		t.Errorf("ls -d m@1: %+v", r)
	}
	if m := lsJSON(t, "-s", st, "-d", "m@1/tmp"); len(m) != 1 || m["m@1/tmp"]["mode"] != "1777" {
		t.Errorf("ls --json -d: %v", m)
	}
}

func TestIngestSummary(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"one": noise(100<<10, 7), "d/two": []byte("two")})
	one := filepath.Join(dir, "one")
	writeFiles(t, one, map[string][]byte{"f": []byte("only")})
	r := cli(t, "-s", st, "ingest", "s@1", one)
	if !strings.Contains(r.stdout, ": 1 file, 4 B logical, 1 file read (4 B),") {
		t.Errorf("singular summary: %q", r.stdout)
	}
	if r := cli(t, "-s", st, "ingest", "s@2", src); !strings.Contains(r.stdout, "2 files, ") || !strings.Contains(r.stdout, "2 files read") {
		t.Errorf("plural summary: %q", r.stdout)
	}
	// An identical re-ingest stores nothing: the reuse index it rewrites
	// replaces the previous one and is not growth.
	res := ingestJSONOf(t, "-s", st, "s@3", src)
	if res.StoredBytes != 0 {
		t.Errorf("identical re-ingest reports %d bytes stored", res.StoredBytes)
	}
	if r := cli(t, "-s", st, "ingest", "s@4", src); !strings.Contains(r.stdout, " nothing new in the store") {
		t.Errorf("identical re-ingest summary: %q", r.stdout)
	}
}

func TestInterruptedIngest(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := map[string][]byte{}
	for i := range 64 {
		files[filepath.Join("d", strings.Repeat("x", i+1))] = noise(1<<20, uint64(i))
	}
	writeFiles(t, src, files)
	cli(t, "-s", st, "ingest", "k@0", t.TempDir())
	if r := cli(t, "-s", st, "stats"); strings.Contains(r.stdout, "0.00x") || !strings.Contains(r.stdout, "nothing stored yet") {
		t.Errorf("stats of a store with only an empty root:\n%s", r.stdout)
	}

	cmd := command("-s", st, "ingest", "k@1", src)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && committedChunks(st) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err == nil {
		t.Fatal("ingest finished before it could be interrupted: the test needs more data")
	}
	if got := strings.TrimSpace(errb.String()); got != "spraydryfs: ingest k@1: interrupted: nothing committed" {
		t.Errorf("interrupted ingest says %q", got)
	}
	// Its chunks are in the store but no root holds them: no ratio of 0.
	r := cli(t, "-s", st, "stats")
	if strings.Contains(r.stdout, "0.00x") || !strings.Contains(r.stdout, "no root") {
		t.Errorf("stats after an interrupted ingest:\n%s", r.stdout)
	}
}

func TestStatsHonest(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	// Zeros compress a thousandfold, the text a few times: scaling the
	// deltas' raw bytes by the other chunks' ratio made their saving negative.
	files := textFiles("t", 20, 6<<10, 1)
	files["zeros"] = make([]byte, 8<<20)
	writeFiles(t, src, files)
	cli(t, "-s", st, "ingest", "h@1", src)
	writeFiles(t, src, edited(textFiles("t", 20, 6<<10, 1)))
	if res := ingestJSONOf(t, "-s", st, "h@2", src); res.DeltaChunks == 0 {
		t.Fatal("no delta chunks: the test needs edits")
	}
	var out struct {
		Store struct {
			Deltas      int64 `json:"delta_chunks"`
			DeltaBytes  int64 `json:"delta_bytes"`
			DeltaStored int64 `json:"delta_stored"`
		} `json:"store"`
		Saved   int64 `json:"delta_saved"`
		Sampled int64 `json:"delta_saved_sampled"`
	}
	r := cli(t, "-s", st, "stats", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stats --json: %+v", r)
	}
	// Each delta was kept because it beat plain zstd: the saving is real,
	// positive and less than the deltas' raw bytes.
	if out.Saved <= 0 || out.Saved >= out.Store.DeltaBytes || out.Sampled != out.Store.Deltas {
		t.Errorf("delta saving %d (sampled %d of %d chunks, %d raw bytes stored as %d)", out.Saved, out.Sampled,
			out.Store.Deltas, out.Store.DeltaBytes, out.Store.DeltaStored)
	}
	wantFail(t, cli(t, "-s", st, "stats", "--sample", "0"), 2, "at least 1")
	r = cli(t, "-s", st, "stats")
	if !strings.Contains(r.stdout, "saved") || strings.Contains(r.stdout, "-") {
		t.Errorf("stats:\n%s", r.stdout)
	}
	// A small store is mostly SQLite's minimum of one page per table and
	// index; stats says so instead of leaving a ratio below 1 unexplained.
	if !strings.Contains(r.stdout, "64 KiB pages") {
		t.Errorf("stats does not explain the page size:\n%s", r.stdout)
	}
}

func TestRecompressWithoutDictionary(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := textFiles("", 400, 1500, 3)
	writeFiles(t, src, files)
	cli(t, "-s", st, "ingest", "--no-delta", "k@1", src)
	if r := cli(t, "-s", st, "train", "--size", "16KiB", "d@1", "root:k@1"); r.code != 0 {
		t.Fatalf("train: %+v", r)
	}
	if r := cli(t, "-s", st, "recompress", "--dict", "d@1"); r.code != 0 || query(st, `SELECT count(*) FROM chunks WHERE dict != 0`) == 0 {
		t.Fatalf("recompress --dict d@1: %+v", r)
	}
	r := cli(t, "-s", st, "dicts", "rm", "d@1")
	wantFail(t, r, 1, "recompress --dict none")
	// dicts rm's advice works: re-dry without a dictionary, then remove it.
	if r := cli(t, "-s", st, "recompress", "--dict", "none"); r.code != 0 || !strings.Contains(r.stdout, "without a dictionary") {
		t.Fatalf("recompress --dict none: %+v", r)
	}
	if n := query(st, `SELECT count(*) FROM chunks WHERE dict != 0`); n != 0 {
		t.Fatalf("%d chunks still use a dictionary", n)
	}
	if r := cli(t, "-s", st, "dicts", "rm", "d@1"); r.code != 0 {
		t.Fatalf("dicts rm after recompress --dict none: %+v", r)
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check: %+v", r)
	}
	for p, want := range files {
		if r := cli(t, "-s", st, "cat", "k@1/"+p); r.stdout != string(want) {
			t.Fatalf("%s changed after recompress --dict none", p)
		}
		break
	}
}

// openPTY returns a pseudo-terminal's two ends, the terminal side sized
// 0x0 as script(1) leaves it when its own input is no terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestProgressBarOnAPTY(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("f%02d", i)] = noise(512<<10, uint64(i))
	}
	writeFiles(t, src, files)
	master, tty := openPTY(t)
	cmd := command("-s", st, "ingest", "p@1", src)
	cmd.Stderr = tty
	// Linux may drop what the master has not read when the last slave fd
	// closes: after the run, a sentinel written through the slave tells
	// the reader it has everything, and only then is the slave closed.
	const sentinel = "\x00done\x00"
	out := make(chan string)
	go func() {
		var b []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(b), sentinel) {
			n, err := master.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		out <- strings.TrimSuffix(string(b), sentinel)
	}()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := tty.Write([]byte(sentinel)); err != nil {
		t.Fatal(err)
	}
	got := <-out
	tty.Close()
	// Frames are separated by carriage returns: the bar is drawn, with
	// the file count, though the terminal reports no width.
	var last string
	for _, f := range strings.Split(got, "\r") {
		if strings.Contains(f, "files") {
			last = f
		}
	}
	if !strings.Contains(last, "/8 files") || !regexp.MustCompile(`\|[█ ]{20}\|`).MatchString(last) {
		t.Errorf("last frame %q of %q: want the file count and a bar 20 cells wide", last, got)
	}
	if regexp.MustCompile(`[0-9] ?[kMGT]B`).MatchString(got) {
		t.Errorf("bar mixes units: %q", got)
	}
}

func TestProgressBarFilesAndBytesTogether(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "bar"))
	if err != nil {
		t.Fatal(err)
	}
	p := newProgressBar(f, "ingest x@1")
	p.Total(4, 400)
	for range 2 {
		p.Add(0, 100)
		p.Add(1, 0)
	}
	p.draw()
	f.Seek(0, io.SeekStart)
	b, _ := io.ReadAll(f)
	frames := strings.Split(string(b), "\r")
	if last := frames[len(frames)-1]; !strings.Contains(last, "2/4 files") || !strings.Contains(last, " 50%") {
		t.Errorf("last frame %q: want 2/4 files at 50%%", last)
	}
	p.finish()
}
