//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// bin is the spraydryfs command that TestMain builds.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spraydryfs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "spraydryfs")
	// Remote stores read in the tests are cached here, not in $HOME.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	out, err := exec.Command("go", "build", "-o", bin, "github.com/spraydryfs/spraydryfs/cmd/spraydryfs").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build spraydryfs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	stopS3()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// spraydryfs runs the command and fails the test if it could not run or
// crashed (a Go stack trace on stderr).
func spraydryfs(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SPRAYDRYFS_STORE=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	r := result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("spraydryfs %q crashed:\n%s", args, r.stderr)
	}
	return r
}

// ok runs the command and fails the test unless it exits 0 silently on
// stderr.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := spraydryfs(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("spraydryfs %q: exit %d, stderr:\n%s", args, r.code, r.stderr)
	}
	return r
}

// wantFail asserts the exit code and a single stderr line containing want.
func wantFail(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", r.code, r.stderr, code, want)
	}
}

// TestRoundTrip stores the fixture and reads it back with extract, to a
// directory and as tar, whole and in parts, then checks the failures.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src, st := filepath.Join(dir, "fixture"), filepath.Join(dir, "store.sdfs")
	fixture.Build(t, src)
	ok(t, "-s", st, "ingest", "fix@1", src)

	t.Run("dir", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		ok(t, "-s", st, "extract", "fix@1", out)
		fixture.Compare(t, src, out, fixture.All())
	})

	t.Run("tar-to-gnu-tar", func(t *testing.T) {
		if v, err := exec.Command("tar", "--version").Output(); err != nil || !bytes.Contains(v, []byte("GNU tar")) {
			t.Skipf("no GNU tar: %v", err)
		}
		out := t.TempDir()
		ex := exec.Command(bin, "-s", st, "extract", "--tar", "fix@1", "-")
		untar := exec.Command("tar", "-C", out, "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-xpf", "-")
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var exErr, tarErr bytes.Buffer
		ex.Stdout, ex.Stderr = pw, &exErr
		untar.Stdin, untar.Stderr = pr, &tarErr
		if err := ex.Start(); err != nil {
			t.Fatal(err)
		}
		if err := untar.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		pr.Close()
		err1, err2 := ex.Wait(), untar.Wait()
		if err1 != nil || err2 != nil || exErr.Len() > 0 || tarErr.Len() > 0 {
			t.Fatalf("extract --tar: %v %s\ntar: %v %s", err1, exErr.String(), err2, tarErr.String())
		}
		// The stream has no entry for its top directory.
		caps := fixture.All()
		caps.RootAttrs = false
		fixture.Compare(t, src, out, caps)
	})

	t.Run("tar-file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "fix.tar")
		ok(t, "-s", st, "extract", "--tar", "fix@1", file)
		checkTar(t, src, file)
		// An existing file is never overwritten, nor removed.
		wantFail(t, spraydryfs(t, "-s", st, "extract", "--tar", "fix@1", file), 1, "file exists")
		if _, err := os.Stat(file); err != nil {
			t.Errorf("the refused run removed %s: %v", file, err)
		}
	})

	t.Run("subpath", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		ok(t, "-s", st, "extract", "fix@1/twin-a/sub", out)
		fixture.Compare(t, filepath.Join(src, "twin-a/sub"), out, fixture.All())

		r := ok(t, "-s", st, "extract", "--tar", "fix@1/twin-a", "-")
		var names []string
		tr := tar.NewReader(strings.NewReader(r.stdout))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
		if got, want := strings.Join(names, " "), "empty sub/ sub/y.txt x.txt"; got != want {
			t.Errorf("tar of a subpath holds %q, want %q", got, want)
		}
	})

	t.Run("single-file", func(t *testing.T) {
		for _, rel := range []string{fixture.BigFile, "xattr/file", "modes/setuid", fixture.NonUTF8} {
			out := filepath.Join(t.TempDir(), "file")
			ok(t, "-s", st, "extract", "fix@1/"+rel, out)
			fixture.Compare(t, filepath.Join(src, rel), out, fixture.All())
		}
	})

	t.Run("missing-path", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		wantFail(t, spraydryfs(t, "-s", st, "extract", "fix@1/no/such", out), 1, "fix@1/no/such: file does not exist")
		wantFail(t, spraydryfs(t, "-s", st, "extract", "fix@2", out), 1, "not found")
		if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed extractions created %s: %v", out, err)
		}
	})

	t.Run("usage", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		for _, args := range [][]string{
			{"extract", "fix@1"},
			{"extract", "fix@1", out, "extra"},
			{"extract", "fix@1", "-"},
			{"extract", "--tar", "--owner", "fix@1", "-"},
			{"extract", "--tar=x", "fix@1", out},
			{"extract", "fix", out},
		} {
			r := spraydryfs(t, append([]string{"-s", st}, args...)...)
			if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || !strings.HasPrefix(r.stderr, "spraydryfs: ") {
				t.Errorf("spraydryfs %q: exit %d, stderr %q; want exit 2 and one line", args, r.code, r.stderr)
			}
		}
		if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("usage errors created %s: %v", out, err)
		}
	})
}

// checkTar reads a tar file with archive/tar and checks it against the
// fixture at src: every path once (the non-UTF-8 one included), with its
// type, mode, owner, nanosecond mtime, size, link target and user.*
// extended attributes.
func checkTar(t *testing.T, src, file string) {
	t.Helper()
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != src {
			want[strings.TrimPrefix(p, src+"/")] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !want[name] {
			t.Errorf("%q: unexpected or repeated entry", h.Name)
			continue
		}
		delete(want, name)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, name), &st); err != nil {
			t.Fatal(err)
		}
		ft := map[byte]uint32{tar.TypeReg: unix.S_IFREG, tar.TypeLink: unix.S_IFREG, tar.TypeDir: unix.S_IFDIR,
			tar.TypeSymlink: unix.S_IFLNK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		if ft != st.Mode&unix.S_IFMT || h.Mode != int64(st.Mode&0o7777) || h.Uid != int(st.Uid) || h.Gid != int(st.Gid) ||
			h.ModTime.UnixNano() != st.Mtim.Nano() {
			t.Errorf("%q: type %c mode %o owner %d:%d mtime %d; source mode %o owner %d:%d mtime %d", h.Name, h.Typeflag, h.Mode,
				h.Uid, h.Gid, h.ModTime.UnixNano(), st.Mode, st.Uid, st.Gid, st.Mtim.Nano())
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Size != st.Size {
				t.Errorf("%q: size %d, want %d", h.Name, h.Size, st.Size)
			}
		case tar.TypeSymlink:
			if target, _ := os.Readlink(filepath.Join(src, name)); h.Linkname != target {
				t.Errorf("%q: target %q, want %q", h.Name, h.Linkname, target)
			}
		case tar.TypeLink:
			var first unix.Stat_t
			if err := unix.Lstat(filepath.Join(src, h.Linkname), &first); err != nil || first.Ino != st.Ino {
				t.Errorf("%q: hard link to %q, which is not the same file", h.Name, h.Linkname)
			}
		}
		for _, x := range []string{"user.fixture", "user.binary"} {
			buf := make([]byte, 256)
			n, err := unix.Lgetxattr(filepath.Join(src, name), x, buf)
			got, has := h.PAXRecords["SCHILY.xattr."+x]
			if (err == nil) != has || err == nil && got != string(buf[:n]) {
				t.Errorf("%q: xattr %s = %q (%v), source %q (%v)", h.Name, x, got, has, buf[:max(n, 0)], err)
			}
		}
	}
	for name := range want {
		t.Errorf("%q: missing from the tar", name)
	}
}
