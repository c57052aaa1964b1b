package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
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

// startMount is mountFUSE that also returns the server's stderr, complete
// once stop has returned.
func startMount(t *testing.T, storePath, which string) (string, *bytes.Buffer, func()) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-s", storePath, "mount", dir}
	if which != "" {
		args = append(args, which)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
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
	for i := 0; i < 500 && !mounted(dir); i++ {
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
