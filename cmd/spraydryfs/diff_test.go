//go:build linux

package main

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// diffPair builds the fixture tree as A and a copy of it with one change
// of every kind as B, both ingested into one store, and returns the store
// and the text lines diff A B must print. Directory mtimes of B are reset
// to A's, so only the changes made show.
func diffPair(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	fixture.Build(t, a)
	dev := unix.Mknod(filepath.Join(a, fixture.Special, "dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) == nil
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	p := func(rel string) string { return filepath.Join(b, rel) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// keepTime gives B's entry A's mtime back.
	keepTime := func(rel string) {
		t.Helper()
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(a, rel), &st))
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(rel), []unix.Timespec{st.Mtim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
	}
	rewrite := func(rel, content string) {
		t.Helper()
		fi, err := os.Lstat(p(rel))
		must(err)
		must(os.WriteFile(p(rel), []byte(content), fi.Mode()))
		keepTime(rel)
	}
	want := []string{
		"added    added.txt",
		"added    newdir\tdir, 2 files, 8 B",
		"added    \"special/new\\xff\"",
		"removed  empty",
		"removed  names/dïr-ü\tdir, 1 file, 27 B",
		"removed  hard/sub/two",
		"modified docs/readme.txt\tsize 4500 -> 7",
		"modified modes/private\tsize 8 -> 12, mode 0600 -> 0640",
		"modified \"special/bad\\xff\\xfe\"\tsize 25 -> 8",
		"type     links/chain\tsymlink -> file",
		"type     modes/setgid\tdir -> file",
		// Identical subtrees changed alike: both paths are reported.
		"modified twin-a/x.txt\tsize 13 -> 13",
		"modified twin-b/x.txt\tsize 13 -> 13",
		"metadata modes/readonly\tmode 0444 -> 0644",
		"metadata text.txt\tmtime",
		"metadata xattr/file\txattrs",
		"metadata links/to-dir\ttarget \"../docs\" -> \"../copies\"",
		"metadata hard/one\tlinks 3 -> 2",
		"metadata docs/three\tlinks 3 -> 2",
		"metadata special/fifo\tmode 0640 -> 0600",
	}
	writeFiles(t, b, map[string][]byte{"added.txt": []byte("new"), "newdir/x": []byte("abc"), "newdir/y": []byte("defgh"),
		fixture.Special + "/new\xff": []byte("raw name")})
	must(os.Remove(p("empty")))
	must(os.RemoveAll(p("names/dïr-ü")))
	must(os.Remove(p("hard/sub/two")))
	rewrite("docs/readme.txt", "changed")
	rewrite("modes/private", "new content\n")
	must(os.Chmod(p("modes/private"), 0o640))
	rewrite(fixture.NonUTF8, "changed\n")
	must(os.Remove(p("links/chain")))
	writeFiles(t, b, map[string][]byte{"links/chain": []byte("now a file")})
	must(os.RemoveAll(p("modes/setgid")))
	writeFiles(t, b, map[string][]byte{"modes/setgid": []byte("was a directory")})
	rewrite("twin-a/x.txt", "twin changed\n")
	rewrite("twin-b/x.txt", "twin changed\n")
	must(os.Chmod(p("modes/readonly"), 0o644))
	must(os.Chtimes(p("text.txt"), time0, time0))
	if err := unix.Setxattr(p("xattr/file"), "user.fixture", []byte("other value"), 0); err != nil {
		t.Logf("no xattrs here (%v): not compared", err)
		want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "metadata xattr/") })
	}
	must(os.Remove(p("links/to-dir")))
	must(os.Symlink("../copies", p("links/to-dir")))
	keepTime("links/to-dir")
	must(os.Chmod(p(fixture.Special+"/fifo"), 0o600))
	if os.Geteuid() == 0 {
		must(os.Lchown(p(fixture.Owned+"/file"), 1, 1))
		want = append(want, "metadata owned/file\towner 1234:5678 -> 1:1")
	}
	if dev {
		must(os.Remove(p(fixture.Special + "/dev")))
		must(unix.Mknod(p(fixture.Special+"/dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
		keepTime(fixture.Special + "/dev")
		want = append(want, "modified special/dev\tdevice 0x103 -> 0x105")
	}
	// Directories: back to A's mtimes where A has them.
	must(filepath.WalkDir(b, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(b, path)
		if fi, err := os.Lstat(filepath.Join(a, rel)); err == nil && fi.IsDir() {
			keepTime(rel)
		}
		return nil
	}))

	st := filepath.Join(dir, "s.sdfs")
	for _, x := range [][2]string{{"t@a", a}, {"t@b", b}} {
		if r := cli(t, "-s", st, "ingest", x[0], x[1]); r.code != 0 {
			t.Fatalf("ingest %s: %+v", x[0], r)
		}
	}
	return st, want
}

// time0 is an mtime no fixture entry has.
var time0 = time.Unix(1_500_000_000, 0)

func TestDiffFixturePair(t *testing.T) {
	st, want := diffPair(t)

	r := cli(t, "-s", st, "diff", "t@a", "t@b")
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("diff: exit %d, stderr %q; want 1 and nothing", r.code, r.stderr)
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("diff lines:\n got %q\nwant %q", got, want)
	}

	// JSON: the same changes; raw names come along in base64.
	r = cli(t, "-s", st, "diff", "--json", "t@a", "t@b")
	if r.code != 1 {
		t.Fatalf("diff --json: %+v", r)
	}
	kinds := map[string]int{}
	raw := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var c struct {
			Kind    string   `json:"kind"`
			Path    string   `json:"path"`
			PathB64 string   `json:"path_b64"`
			Attrs   []string `json:"attrs"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		kinds[c.Kind]++
		if c.PathB64 != "" {
			b, err := base64.StdEncoding.DecodeString(c.PathB64)
			if err != nil {
				t.Fatal(err)
			}
			raw[string(b)] = true
		}
	}
	if !raw[fixture.NonUTF8] || !raw[fixture.Special+"/new\xff"] || len(raw) != 2 {
		t.Errorf("path_b64 of %v, want the two non-UTF-8 paths", raw)
	}
	if len(want) != kinds["added"]+kinds["removed"]+kinds["modified"]+kinds["type"]+kinds["metadata"] {
		t.Errorf("JSON kinds %v for %d changes", kinds, len(want))
	}

	// --stat: counts and bytes, everything inside added and removed
	// directories included.
	r = cli(t, "-s", st, "diff", "--stat", "--json", "t@a", "t@b")
	var m map[string]int64
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || r.code != 1 {
		t.Fatalf("diff --stat --json: %+v, %v", r, err)
	}
	// Added: added.txt 3, newdir 2 files 8, new\xff 8; type changes bring
	// links/chain (10) and modes/setgid (15). Removed: empty, names/dïr-ü
	// (1 file, 27), hard/sub/two (23); type changes take
	// modes/setgid/inside (22).
	if m["added"] != 3 || m["removed"] != 3 || m["type_changed"] != 2 || m["files_added"] != 6 || m["bytes_added"] != 3+8+8+10+15 ||
		m["files_removed"] != 4 || m["bytes_removed"] != 0+27+23+22 {
		t.Errorf("stat %v", m)
	}
	if n := int64(len(want)); m["added"]+m["removed"]+m["modified"]+m["type_changed"]+m["metadata"] != n {
		t.Errorf("stat counts %v, want %d changes", m, n)
	}
	if m["bytes_changed"] != 7+12+8+13+13 {
		t.Errorf("bytes_changed %d, want the new files' bytes (one chunk each)", m["bytes_changed"])
	}
	r = cli(t, "-s", st, "diff", "--stat", "t@a", "t@b")
	if r.code != 1 || !strings.Contains(r.stdout, "added    3 entries: 6 files") {
		t.Errorf("diff --stat: %+v", r)
	}

	// Subtrees and single files compare too; paths are relative.
	r = cli(t, "-s", st, "diff", "t@a/docs", "t@b/docs")
	if r.code != 1 || r.stdout != "modified readme.txt\tsize 4500 -> 7\nmetadata three\tlinks 3 -> 2\n" {
		t.Errorf("diff of subtrees: %+v", r)
	}
	r = cli(t, "-s", st, "diff", "t@a/text.txt", "t@b/text.txt")
	if r.code != 1 || r.stdout != "metadata .\tmtime\n" {
		t.Errorf("diff of files: %+v", r)
	}
}

func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x"), "d/g": []byte("y")})
	for _, v := range []string{"a@1", "a@2"} {
		if r := cli(t, "-s", st, "ingest", v, src); r.code != 0 {
			t.Fatalf("ingest: %+v", r)
		}
	}
	for _, args := range [][]string{{"a@1", "a@2"}, {"a@1", "a@latest"}, {"a@1/d", "a@2/d"}, {"--stat", "a@1", "a@1"}, {"--json", "a@2", "a@1"}} {
		r := cli(t, append([]string{"-s", st, "diff"}, args...)...)
		if r.code != 0 || r.stderr != "" || (r.stdout != "" && args[0] != "--stat") {
			t.Errorf("diff %v of identical trees: %+v", args, r)
		}
	}
	wantFail(t, cli(t, "-s", st, "diff", "a@1", "zzz@1"), 2, "not found")
	wantFail(t, cli(t, "-s", st, "diff", "a@1", "a@1/nope"), 2, "does not exist")
	wantFail(t, cli(t, "-s", st, "diff", "a@1", "bad"), 2, "want NAME@VERSION")
	wantFail(t, cli(t, "-s", st, "diff", "a@1"), 2, "accepts 2 arg")
	wantFail(t, cli(t, "diff", "a@1", "a@2"), 2, "no store given")
	wantFail(t, cli(t, "-s", filepath.Join(dir, "none"), "diff", "a@1", "a@2"), 2, "does not exist")
	writeFiles(t, src, map[string][]byte{"f": []byte("z")})
	if r := cli(t, "-s", st, "ingest", "a@3", src); r.code != 0 {
		t.Fatalf("ingest: %+v", r)
	}
	if r := cli(t, "-s", st, "diff", "a@2/d", "a@3/d"); r.code != 0 {
		t.Errorf("unchanged subtree: %+v", r)
	}
	if r := cli(t, "-s", st, "diff", "a@2", "a@3"); r.code != 1 || !strings.HasPrefix(r.stdout, "modified f\tsize 1 -> 1") {
		t.Errorf("changed file: %+v", r)
	}
}
