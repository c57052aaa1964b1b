//go:build linux

package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
)

// helperLink is where mount(8) looks for the helper of type spraydryfs.
const helperLink = "/sbin/mount.spraydryfs"

// installHelper makes /sbin/mount.spraydryfs a link to the test binary
// for the test's duration; whatever was there before is put back.
func installHelper(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "mount(8) runs helpers for root only; not root"
	} else {
		reason = missingTools("Debian mount, fuse3", "mount", "umount", "fusermount3")
	}
	unavailable(t, "mount helper tests", reason)
	requireFUSE(t)
	backup := ""
	if _, err := os.Lstat(helperLink); err == nil {
		backup = helperLink + ".test-backup-" + strconv.Itoa(os.Getpid())
		if err := os.Rename(helperLink, backup); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, helperLink); err != nil {
		if backup != "" {
			os.Rename(backup, helperLink)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(helperLink); err != nil {
			t.Errorf("remove %s: %v", helperLink, err)
		}
		if backup != "" {
			if err := os.Rename(backup, helperLink); err != nil {
				t.Errorf("restore %s from %s: %v", helperLink, backup, err)
			}
		}
	})
}

// run runs a command, returning its output and exit code.
func runCmd(t *testing.T, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	r := result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("%s %q crashed:\n%s", name, args, r.stderr)
	}
	return r
}

// serverOf is the pid of the spraydryfs process serving dir, or 0.
func serverOf(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) != "spraydryfs" && filepath.Base(args[0]) != "mount.spraydryfs" {
			continue
		}
		for _, a := range args[1:] {
			if a == dir {
				pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
				return pid
			}
		}
	}
	return 0
}

// checkServed checks that dir is mounted, that file (unless "") reads
// back as want, and that a detached server (its own session) serves it.
// It returns the server's pid.
func checkServed(t *testing.T, dir, file string, want []byte) int {
	t.Helper()
	if !mounted(dir) {
		t.Fatalf("%s is not mounted", dir)
	}
	if file != "" {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read %s: %d bytes (want %d), %v", file, len(got), len(want), err)
		}
	}
	pid := serverOf(t, dir)
	if pid == 0 {
		t.Fatalf("no server process for %s", dir)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("server %d is not detached: session %d, %v", pid, sid, err)
	}
	return pid
}

// unmountAndWait unmounts dir with the given command and checks that the
// server exits.
func unmountAndWait(t *testing.T, dir string, pid int, umount ...string) {
	t.Helper()
	if r := runCmd(t, umount[0], append(umount[1:], dir)...); r.code != 0 {
		t.Errorf("%s %s: exit %d: %s", strings.Join(umount, " "), dir, r.code, r.stderr)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	for i := 0; i < 1000; i++ {
		if exited(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("server %d kept running after %s", pid, umount[0])
}

// exited reports whether process pid has exited: gone, or a zombie (a
// detached server's parent is init, which may reap it late).
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, after, _ := bytes.Cut(b, []byte(") "))
	return bytes.HasPrefix(after, []byte("Z"))
}

// TestMountHelper drives the helper through mount(8) as an operator
// would: mount -t spraydryfs with root=, mount -a from an fstab holding
// the README's line, and the failures with their exit codes.
func TestMountHelper(t *testing.T) {
	installHelper(t)
	st, _, big := opsStore(t)

	t.Run("mount-t", func(t *testing.T) {
		dir := t.TempDir()
		r := runCmd(t, "mount", "-t", "spraydryfs", st, dir, "-o", "ro,root=t@1/sub,uid=4321")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("mount -t spraydryfs: exit %d:\n%s", r.code, r.stderr)
		}
		pid := checkServed(t, dir, "small", []byte("small\n"))
		if fi, err := os.Stat(filepath.Join(dir, "small")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4321 {
			t.Errorf("uid=4321 not applied: %v", err)
		}
		// The default rw, added by mount(8), warns and still mounts read-only.
		dir2 := t.TempDir()
		r = runCmd(t, "mount", "-t", "spraydryfs", st, dir2, "-o", "root=t@1")
		if r.code != 0 || !strings.Contains(r.stderr, "read-only") {
			t.Errorf("mount without ro: exit %d, stderr %q", r.code, r.stderr)
		}
		pid2 := checkServed(t, dir2, "big", big)
		if err := os.WriteFile(filepath.Join(dir2, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write: %v, want EROFS", err)
		}
		unmountAndWait(t, dir, pid, "umount")
		unmountAndWait(t, dir2, pid2, "fusermount3", "-u")
	})

	t.Run("errors", func(t *testing.T) {
		dir := t.TempDir()
		for _, c := range []struct {
			opts string
			code int
			want string
		}{
			{"ro,root=t@1,bogus", 1, `mount.spraydryfs: unknown mount option "bogus"`},
			{"ro,cache-size=huge", 1, `invalid size "huge"`},
			{"ro,root=../t", 1, "root=../t"},
			{"ro,root=nosuch@1", 32, "root nosuch@1: not found"},
		} {
			r := runCmd(t, "mount", "-t", "spraydryfs", st, dir, "-o", c.opts)
			wantFail(t, r, c.code, c.want)
			if mounted(dir) {
				t.Fatalf("-o %s mounted %s", c.opts, dir)
			}
		}
		r := runCmd(t, "mount", "-t", "spraydryfs", st, filepath.Join(dir, "missing"), "-o", "ro")
		if r.code == 0 || !strings.Contains(r.stderr, "missing") {
			t.Errorf("missing mount point: %+v", r)
		}
		wantFail(t, runCmd(t, "mount", "-t", "spraydryfs", filepath.Join(dir, "no.sdfs"), dir, "-o", "ro"), 32, "does not exist")
	})

	t.Run("fstab", func(t *testing.T) {
		// The README's fstab line, with this test's store and mount point,
		// and two more lines: every root, and one tree by version.
		readme, err := os.ReadFile("../README.md")
		if err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, "/srv/trees.sdfs /mnt/tc spraydryfs ") {
				line = l
			}
		}
		if line == "" {
			t.Fatal("README.md has no fstab line for /srv/trees.sdfs /mnt/tc")
		}
		tc, all, one := t.TempDir(), t.TempDir(), t.TempDir()
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "cc"), big, 0o755)
		ok(t, "-s", st, "ingest", "toolchain@1.0", src)
		fstab := filepath.Join(t.TempDir(), "fstab")
		os.WriteFile(fstab, []byte("# test fstab\n"+
			strings.Replace(strings.Replace(line, "/srv/trees.sdfs", st, 1), "/mnt/tc", tc, 1)+"\n"+
			st+" "+all+" spraydryfs ro,nofail,x-systemd.requires=network.target 0 0\n"+
			st+" "+one+" spraydryfs ro,root=t@1,noatime,nodev,nosuid,_netdev 0 0\n"), 0o644)
		r := runCmd(t, "mount", "-a", "-T", fstab)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("mount -a: exit %d:\n%s", r.code, r.stderr)
		}
		pids := []int{
			checkServed(t, tc, "cc", big),
			checkServed(t, all, "t/1/big", big),
			checkServed(t, one, "big", big),
		}
		// Again: every line is seen as mounted (the source is the store).
		if r := runCmd(t, "mount", "-a", "-T", fstab); r.code != 0 || r.stderr != "" {
			t.Errorf("second mount -a: exit %d:\n%s", r.code, r.stderr)
		}
		if out, _ := os.ReadFile("/proc/self/mounts"); bytes.Count(out, []byte(" "+tc+" ")) != 1 {
			t.Errorf("%s mounted more than once", tc)
		}
		for i, dir := range []string{tc, all, one} {
			unmountAndWait(t, dir, pids[i], "umount")
		}
	})
}

// TestMountBackground checks spraydryfs mount --background: it returns
// once the kernel has the mount (read at once, no waiting), with stderr
// quiet and closed (a caller reading it to the end does not hang); the
// detached server keeps serving until umount; and start-up errors come
// back on stderr with the exit code.
func TestMountBackground(t *testing.T) {
	requireFUSE(t)
	st, _, big := opsStore(t)
	dir := t.TempDir()
	start := time.Now()
	r := spraydryfs(t, "-s", st, "mount", "--background", dir, "t@1")
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Fatalf("mount --background: %+v", r)
	}
	pid := checkServed(t, dir, "big", big)
	t.Logf("mounted in %v, server pid %d", time.Since(start), pid)
	time.Sleep(time.Second)
	checkServed(t, dir, "sub/small", []byte("small\n"))
	unmountAndWait(t, dir, pid, "fusermount3", "-u")

	wantFail(t, spraydryfs(t, "-s", st, "mount", "--background", filepath.Join(dir, "missing"), "t@1"), 1, "mount point")
	wantFail(t, spraydryfs(t, "-s", st, "mount", "--background", dir, "nosuch@1"), 1, "not found")
	wantFail(t, spraydryfs(t, "-s", st, "mount", "--background", dir, "../x"), 2, "invalid root")
	if mounted(dir) {
		t.Error("a failed start left a mount")
	}
}

// TestMakeInstall checks make install with DESTDIR: the binary in
// /usr/local/bin and /sbin/mount.spraydryfs a link to it that, called by
// that name, is the mount helper.
func TestMakeInstall(t *testing.T) {
	unavailable(t, "make install test", missingTools("Debian make", "make"))
	dest := t.TempDir()
	built := filepath.Join(t.TempDir(), "spraydryfs")
	r := runCmd(t, "make", "-C", "..", "install", "DESTDIR="+dest, "BIN="+built)
	if r.code != 0 {
		t.Fatalf("make install: %s%s", r.stdout, r.stderr)
	}
	exe := filepath.Join(dest, "usr/local/bin/spraydryfs")
	if fi, err := os.Stat(exe); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v", err)
	}
	link := filepath.Join(dest, "sbin/mount.spraydryfs")
	if target, err := os.Readlink(link); err != nil || target != "/usr/local/bin/spraydryfs" {
		t.Fatalf("helper link: %q, %v", target, err)
	}
	// What the link does once installed: the binary called by its name.
	cmd := exec.Command(exe, "--help")
	cmd.Args[0] = "/sbin/mount.spraydryfs"
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "Usage: mount.spraydryfs STORE MOUNTPOINT") {
		t.Errorf("installed helper --help: %v\n%s", err, out)
	}
}

// TestMountBackgroundJournal checks where a background server logs once
// it is ready: to the caller's stderr if that is systemd's journal
// (JOURNAL_STREAM names it, as systemd sets it for services and mount
// units), so a corrupt chunk read later is reported there.
func TestMountBackgroundJournal(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	bad := []byte(strings.Repeat("this chunk rots ", 100))
	os.WriteFile(filepath.Join(src, "bad"), bad, 0o644)
	ok(t, "-s", st, "ingest", "c@1", src)
	conformance.Flip(t, st, hash.Sum(bad))

	journal, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	var js syscall.Stat_t
	if err := syscall.Fstat(int(journal.Fd()), &js); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "-s", st, "mount", "--background", dir, "c@1")
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+strconv.FormatUint(js.Dev, 10)+":"+strconv.FormatUint(js.Ino, 10))
	cmd.Stderr = journal
	if err := cmd.Run(); err != nil {
		t.Fatalf("mount --background: %v", err)
	}
	pid := checkServed(t, dir, "", nil)
	if _, err := os.ReadFile(filepath.Join(dir, "bad")); !errors.Is(err, syscall.EIO) {
		t.Errorf("corrupt file: %v, want EIO", err)
	}
	unmountAndWait(t, dir, pid, "umount")
	logged, _ := os.ReadFile(journal.Name())
	if want := "corrupt chunk " + hash.Sum(bad).String(); !bytes.Contains(logged, []byte(want)) {
		t.Errorf("the journal lacks %q:\n%s", want, logged)
	}
}
