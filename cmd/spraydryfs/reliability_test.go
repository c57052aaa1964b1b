//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
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

// sqlExec runs SQL on a database file outside spraydryfs.
func sqlExec(t *testing.T, path, query string, args ...any) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sqlitex.ExecuteTransient(c, query, &sqlitex.ExecOptions{Args: args}); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Every read command works on a store copied with VACUUM INTO (rollback
// journal mode) and, for root, on read-only media, in both journal modes.
func TestReadCommandsOnCopiedAndReadOnlyStores(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	big := noise(300<<10, 7)
	writeFiles(t, src, map[string][]byte{"small": []byte("hello"), "d/big": big})
	if r := cli(t, "-s", st, "ingest", "a@1", src); r.code != 0 {
		t.Fatal(r)
	}
	stores := []string{filepath.Join(dir, "c.sdfs")}
	sqlExec(t, st, "VACUUM INTO ?", stores[0])
	if os.Geteuid() == 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o755)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", ro).CombinedOutput(); err != nil {
			t.Logf("no read-only media test: mount tmpfs: %v %s", err, out)
		} else {
			t.Cleanup(func() { exec.Command("umount", "-l", ro).Run() })
			for _, p := range []string{st, stores[0]} {
				b, _ := os.ReadFile(p)
				os.WriteFile(filepath.Join(ro, filepath.Base(p)), b, 0o444)
			}
			if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v %s", err, out)
			}
			stores = append(stores, filepath.Join(ro, "s.sdfs"), filepath.Join(ro, "c.sdfs"))
			wantFail(t, cli(t, "-s", stores[1], "ingest", "a@2", src), 1, "cannot be written: read-only file system")
		}
	}
	for _, s := range stores {
		for _, args := range [][]string{{"roots"}, {"ls", "-R", "a@1"}, {"stats"}, {"check", "--read-data"}, {"dicts"}} {
			if r := cli(t, append([]string{"-s", s}, args...)...); r.code != 0 {
				t.Errorf("%s %v: %+v", s, args, r)
			}
		}
		if r := cli(t, "-s", s, "cat", "a@1/d/big"); r.code != 0 || r.stdout != string(big) {
			t.Errorf("%s cat: exit %d, %d bytes, %q", s, r.code, len(r.stdout), r.stderr)
		}
		out := filepath.Join(t.TempDir(), "x")
		if r := cli(t, "-s", s, "extract", "a@1", out); r.code != 0 {
			t.Errorf("%s extract: %+v", s, r)
		}
	}
}

func TestOtherDatabaseIsNotAStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "other.db")
	sqlExec(t, db, "CREATE TABLE t(x)")
	sqlExec(t, db, "PRAGMA user_version=5")
	for _, args := range [][]string{{"roots"}, {"ls", "a@1"}, {"cat", "a@1/f"}, {"stats"}, {"check"}, {"dicts"}, {"ingest", "a@1", dir}} {
		wantFail(t, cli(t, append([]string{"-s", db}, args...)...), 1, "not a SprayDryFS store")
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"rots"}, {"serve", "bogus"}, {"dicts", "bogus"},
		{"completion", "bogus"}, {"completion", "bash", "extra"}, {"help", "bogus"}, {"help", "serve", "bogus"}} {
		r := cli(t, args...)
		wantFail(t, r, 2, "unknown")
		if !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: no hint at --help: %q", args, r.stderr)
		}
	}
	if r := cli(t, "rots"); !strings.Contains(r.stderr, "did you mean roots?") {
		t.Errorf("no suggestion: %q", r.stderr)
	}
	for _, args := range [][]string{{}, {"help"}, {"help", "serve", "9p"}, {"completion", "bash"}, {"serve", "--help"}} {
		if r := cli(t, args...); r.code != 0 || r.stdout == "" {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

// TestBadListenAddressExitsTwo: a malformed address is a usage error of
// every server, named in one line, before anything listens.
func TestBadListenAddressExitsTwo(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	writeFiles(t, filepath.Join(dir, "src"), map[string][]byte{"f": []byte("x")})
	if r := cli(t, "-s", st, "ingest", "a@1", filepath.Join(dir, "src")); r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, args := range [][]string{{"serve", "webdav", "--listen", "bogus"}, {"serve", "9p", "--listen", "bogus"},
		{"serve", "http", "--listen", "127.0.0.1:99999"}, {"serve", "--webdav", "localhost"}, {"serve", "webdav", "--metrics", "x:y"}} {
		r := cli(t, append([]string{"-s", st}, args...)...)
		wantFail(t, r, 2, "want host:port")
	}
}

func TestCatOfSpecialFileFails(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("fifo", filepath.Join(src, "to-fifo"))
	special := map[string]string{"fifo": "FIFO", "to-fifo": "FIFO"}
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(filepath.Join(src, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			special["null"] = "character device"
		}
	}
	if r := cli(t, "-s", st, "ingest", "a@1", src); r.code != 0 {
		t.Fatal(r)
	}
	for name, kind := range special {
		wantFail(t, cli(t, "-s", st, "cat", "a@1/"+name), 1, "a@1/"+name+": is a "+kind+", not a regular file")
	}
	if r := cli(t, "-s", st, "cat", "a@1/f"); r.code != 0 || r.stdout != "x" {
		t.Fatalf("cat of a regular file: %+v", r)
	}
}

// A damaged store is an error, never a listing that silently leaves
// something out.
func TestDictsReportsMissingDefault(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	if r := cli(t, "-s", st, "ingest", "a@1", dir); r.code != 0 {
		t.Fatal(r)
	}
	sqlExec(t, st, "INSERT INTO meta VALUES ('default_dict', '99')")
	wantFail(t, cli(t, "-s", st, "dicts"), 1, "default dictionary 99 is missing")
}

// TestRootsListsDamagedRoots: a damaged roots row is listed with the
// others and fails the command by name, instead of failing the listing
// of every root.
func TestRootsListsDamagedRoots(t *testing.T) {
	dir := t.TempDir()
	st, src := filepath.Join(dir, "s.sdfs"), filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	for _, id := range []string{"a@1", "b@1"} {
		if r := cli(t, "-s", st, "ingest", id, src); r.code != 0 {
			t.Fatal(r)
		}
	}
	sqlExec(t, st, `UPDATE roots SET top = x'00' WHERE name = 'b'`)
	r := cli(t, "-s", st, "roots")
	wantFail(t, r, 1, "damaged roots")
	if !strings.Contains(r.stdout, "a@1") || !strings.Contains(r.stdout, "b@1") || !strings.Contains(r.stderr, "b@1") {
		t.Fatalf("roots: %+v", r)
	}
	if r := cli(t, "-s", st, "cat", "a@1/f"); r.code != 0 || r.stdout != "x" {
		t.Fatalf("cat of a healthy root beside a damaged one: %+v", r)
	}
	wantFail(t, cli(t, "-s", st, "check"), 1, "problem")
}
