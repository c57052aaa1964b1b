//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// requireFUSE skips where FUSE cannot work, saying why; in CI (CI set) it
// fails instead, so the suite never silently skips there.
func requireFUSE(t *testing.T) {
	t.Helper()
	reason := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		reason = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			reason = "not root and no fusermount3"
		}
	}
	unavailable(t, "FUSE tests", reason)
}

// mounted reports whether dir is in /proc/self/mounts.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mounts")
	return bytes.Contains(b, []byte(" "+dir+" "))
}

// mountFUSE runs `spraydryfs mount` in the background and waits until the
// mount is up; the returned function stops it with SIGTERM and checks that
// it unmounted and exited cleanly.
func mountFUSE(t *testing.T, storePath, which string) (string, func()) {
	dir, _, stop := startMount(t, storePath, which)
	return dir, stop
}

// startMount is mountFUSE that also returns the server's stderr (safe to
// read while it runs; complete once stop has returned), and takes more
// global options (--cache-dir DIR).
func startMount(t *testing.T, storePath, which string, global ...string) (string, *syncBuffer, func()) {
	t.Helper()
	dir := t.TempDir()
	args := append(append([]string{"-s", storePath}, global...), "mount", dir)
	if which != "" {
		args = append(args, which)
	}
	cmd := exec.Command(bin, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !mounted(dir) {
		select {
		case err := <-exited:
			t.Fatalf("mount exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("mount did not come up:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return dir, &stderr, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("mount exited with %v:\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Errorf("mount did not stop on SIGTERM")
		}
		if mounted(dir) {
			t.Errorf("%s still mounted after the server stopped", dir)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	}
}

func TestFUSE(t *testing.T) {
	requireFUSE(t)
	conformance.Run(t, conformance.Suite{
		Caps: conformance.Caps{
			Caps:         fixture.All(),
			StableInodes: true,
			Tools:        true,
			WriteErrno:   syscall.EROFS,
			CorruptErrno: syscall.EIO,
		},
		Mount: mountFUSE,
	})
}

func TestFUSEMountErrorsAndLazyUnmount(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	spraydryfs(t, "-s", st, "ingest", "m@1", src)

	r := spraydryfs(t, "-s", st, "mount", filepath.Join(t.TempDir(), "missing"))
	if r.code != 1 || !strings.Contains(r.stderr, "mount point") {
		t.Errorf("missing mount point: %+v", r)
	}
	dir, unmount := mountFUSE(t, st, "m@1")
	r = spraydryfs(t, "-s", st, "mount", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "busy") {
		t.Errorf("busy mount point: %+v", r)
	}
	unmount()

	// A lazy unmount from outside ends the server cleanly.
	cmd := exec.Command(bin, "-s", st, "mount", dir, "m@1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Served, not only mounted: a detach before the kernel's INIT reaches
	// the server ends it with "init: no such device".
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(filepath.Join(dir, "f")); err == nil && mounted(dir) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server after umount -l: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Error("server kept running after umount -l")
	}
}

func TestFUSECorruptionIsLogged(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	bad := []byte(strings.Repeat("this chunk rots ", 100))
	os.WriteFile(filepath.Join(src, "bad"), bad, 0o644)
	os.WriteFile(filepath.Join(src, "good"), []byte("fine"), 0o644)
	spraydryfs(t, "-s", st, "ingest", "c@1", src)
	conformance.Flip(t, st, hash.Sum(bad))

	dir, stderr, stop := startMount(t, st, "c@1")
	_, err := os.ReadFile(filepath.Join(dir, "bad"))
	good, gerr := os.ReadFile(filepath.Join(dir, "good"))
	stop()
	if !errors.Is(err, syscall.EIO) || gerr != nil || string(good) != "fine" {
		t.Fatalf("corrupt file: %v; healthy file: %q, %v", err, good, gerr)
	}
	if want := "corrupt chunk " + hash.Sum(bad).String(); !strings.Contains(stderr.String(), want) {
		t.Errorf("server log lacks %q:\n%s", want, stderr.String())
	}
}

// damageTop replaces the top listing of root id in the store at path with
// bytes that do not decode.
func damageTop(t *testing.T, path, id string) {
	t.Helper()
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := store.ParseRef(id, true)
	r, err := s.Root(context.Background(), ref.Name, ref.Version)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := sqlitex.Execute(c, `UPDATE dirs SET data = ? WHERE hash = ?`,
		&sqlitex.ExecOptions{Args: []any{[]byte("\x07garbage"), r.Top.Hash[:]}}); err != nil || c.Changes() != 1 {
		t.Fatalf("damage the top of %s: %v (%d rows)", id, err, c.Changes())
	}
}

// TestFUSEOneDamagedRoot: a root whose top listing is corrupt does not
// stop a mount of every root or of its name; it answers EIO where it is
// read, and the healthy roots are served.
func TestFUSEOneDamagedRoot(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src, other := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("fine\n"), 0o644)
	os.WriteFile(filepath.Join(other, "g"), []byte("other\n"), 0o644) // not the same listing
	ok(t, "-s", st, "ingest", "bad@1", other)
	ok(t, "-s", st, "ingest", "good@1", src)
	ok(t, "-s", st, "ingest", "good@2", src)
	damageTop(t, st, "bad@1")
	for _, which := range []string{"", "good", "bad"} {
		dir, stderr, stop := startMount(t, st, which)
		prefix := map[string]string{"": "good/", "good": "", "bad": ""}[which]
		if which != "bad" {
			if b, err := os.ReadFile(filepath.Join(dir, prefix+"1/f")); err != nil || string(b) != "fine\n" {
				t.Errorf("mount %q: healthy root: %q, %v", which, b, err)
			}
		}
		bad := map[string]string{"": "bad/1", "good": "", "bad": "1"}[which]
		if bad != "" {
			if _, err := os.ReadDir(filepath.Join(dir, bad)); !errors.Is(err, syscall.EIO) {
				t.Errorf("mount %q: readdir of the damaged root: %v, want EIO", which, err)
			}
		}
		stop()
		if bad != "" && !strings.Contains(stderr.String(), "corrupt") {
			t.Errorf("mount %q: the damage is not logged:\n%s", which, stderr.String())
		}
	}
	// A mount of the damaged root itself comes up too and answers EIO.
	dir, stop := mountFUSE(t, st, "bad@1")
	if _, err := os.ReadDir(dir); !errors.Is(err, syscall.EIO) {
		t.Errorf("mount bad@1: readdir: %v, want EIO", err)
	}
	stop()
}

// TestFUSEXattrsOfNewRoots: a mount of every root (or of a name) made
// when no root had xattrs shows the xattrs of a root ingested later,
// without a remount.
func TestFUSEXattrsOfNewRoots(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	plain, withX := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(plain, "f"), []byte("plain\n"), 0o644)
	os.WriteFile(filepath.Join(withX, "f"), []byte("x\n"), 0o644)
	if err := unix.Setxattr(filepath.Join(withX, "f"), "user.colour", []byte("blue"), 0); err != nil {
		t.Skipf("the test's file system has no user xattrs: %v", err)
	}
	ok(t, "-s", st, "ingest", "n@1", plain)
	ns, stopNS := mountFUSE(t, st, "")
	defer stopNS()
	name, stopName := mountFUSE(t, st, "n")
	defer stopName()
	buf := make([]byte, 64)
	for _, dir := range []string{ns + "/n/1", name + "/1"} {
		// The kernel asks first; an ENOSYS now would stop it for good.
		if _, err := unix.Getxattr(filepath.Join(dir, "f"), "user.colour", buf); !errors.Is(err, unix.ENODATA) {
			t.Errorf("getxattr on %s/f without xattrs: %v, want ENODATA", dir, err)
		}
		if n, err := unix.Listxattr(filepath.Join(dir, "f"), buf); err != nil || n != 0 {
			t.Errorf("listxattr on %s/f without xattrs: %d, %v", dir, n, err)
		}
	}
	ok(t, "-s", st, "ingest", "n@2", withX)
	for _, f := range []string{ns + "/n/2/f", name + "/2/f", ns + "/n/latest/f"} {
		n, err := unix.Getxattr(f, "user.colour", buf)
		if err != nil || string(buf[:n]) != "blue" {
			t.Errorf("getxattr %s after the ingest: %q, %v, want blue", f, buf[:max(n, 0)], err)
		}
	}
}

// TestFUSEPosixACL: a stored POSIX ACL reads back byte-exact through a
// mount, which has the kernel's ACL support (and its per-inode cache) on.
func TestFUSEPosixACL(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	f := filepath.Join(src, "f")
	os.WriteFile(f, []byte("acl\n"), 0o640)
	// version 2; user::rw-, user:1234:r--, group::r--, mask::r--, other::---
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, 0xffffffff}, {0x02, 4, 1234}, {0x04, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		acl = append(acl, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8),
			byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	if err := unix.Setxattr(f, "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("the test's file system takes no POSIX ACLs: %v", err)
	}
	ok(t, "-s", st, "ingest", "a@1", src)
	dir, stop := mountFUSE(t, st, "a@1")
	defer stop()
	for range 2 { // the second answer comes from the kernel's cache
		buf := make([]byte, 256)
		n, err := unix.Getxattr(filepath.Join(dir, "f"), "system.posix_acl_access", buf)
		if err != nil || !bytes.Equal(buf[:max(n, 0)], acl) {
			t.Fatalf("ACL through the mount: %x, %v; want %x", buf[:max(n, 0)], err, acl)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "acl\n" {
		t.Fatalf("read: %q, %v", b, err)
	}
}

// TestFUSEWarmWalk walks a mount twice, reading every file, for a mount
// of one root and of the namespace: on the second walk Linux has the
// listings and contents cached and opens directories without a message
// (the mount answers OPENDIR with ENOSYS), so the server gets almost no
// request, where it used to get an OPENDIR per directory. The second
// walk's listing equals the first's, including a directory of 1,500
// entries, which takes several READDIRs.
func TestFUSEWarmWalk(t *testing.T) {
	requireFUSE(t)
	st := filepath.Join(t.TempDir(), "s.sdfs")
	src := t.TempDir()
	dirs := 1
	for i := range 60 {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i), "sub")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs += 2
		for j := range 3 {
			os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", j)), []byte(fmt.Sprintf("file %d of %d\n", j, i)), 0o644)
		}
	}
	big := filepath.Join(src, "big")
	os.Mkdir(big, 0o755)
	dirs++
	for i := range 1500 {
		os.WriteFile(filepath.Join(big, fmt.Sprintf("entry-with-a-long-name-%04d", i)), nil, 0o644)
	}
	ok(t, "-s", st, "ingest", "n@1", src)
	for _, root := range []string{"n@1", ""} {
		t.Run("root="+root, func(t *testing.T) { warmWalk(t, st, root, dirs) })
	}
}

// warmWalk walks the mount of root (the namespace if "") of store st
// twice and checks the second walk, of dirs stored directories and the
// namespace's, is answered by the kernel.
func warmWalk(t *testing.T, st, root string, dirs int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	mnt, _, stop := startMount(t, st, root, "--metrics="+addr)
	defer stop()
	walk := func() string {
		var b strings.Builder
		err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fmt.Fprintln(&b, p, d.Type())
			if d.Type().IsRegular() {
				data, err := os.ReadFile(p)
				fmt.Fprintf(&b, "%q\n", data)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	requests := func() float64 {
		return scrape(t, "http://"+addr+"/metrics")["spraydryfs_requests_total{frontend=fuse,status=OK}"]
	}
	first := walk()
	before := requests()
	second := walk()
	sent := requests() - before
	if second != first {
		t.Errorf("the second walk listed another tree")
	}
	if n := strings.Count(first, "entry-with-a-long-name-"); n != 1500 {
		t.Errorf("big/ lists %d entries, want 1500", n)
	}
	t.Logf("%d directories; the warm walk sent %v requests", dirs, sent)
	if sent >= float64(dirs)/4 {
		t.Errorf("the warm walk of %d directories sent %v requests: directories are still opened through the server", dirs, sent)
	}
}
