//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// requireVM skips where the 9P guest cannot boot, saying why; in CI (CI
// set) it fails instead, so the test never silently skips there.
func requireVM(t *testing.T) {
	t.Helper()
	unavailable(t, "9P VM test", missingTools("apt-get install qemu-system-x86 busybox-static cpio",
		"qemu-system-x86_64", "busybox", "cpio", "dpkg-deb", "apt-get"))
}

// serve9P runs `spraydryfs serve 9p` on a free loopback port and returns
// the port and a function that stops it with SIGTERM, checks that it
// exited cleanly and returns its stderr.
func serve9P(t *testing.T, storePath string, args ...string) (string, func() string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-s", storePath, "serve", "9p", "--listen", "127.0.0.1:0"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve 9p printed no address: %v\n%s", err, stderr.String())
	}
	_, port, _ := strings.Cut(strings.TrimSpace(line), ":")
	return port, func() string {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve 9p exited with %v:\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("serve 9p did not stop on SIGTERM")
		}
		return stderr.String()
	}
}

// bootGuest builds the guest (kernel cached outside the repository by
// vm/prepare.sh, initramfs with the agent) and runs it with the given
// kernel command-line parameters; it returns the serial console output.
func bootGuest(t *testing.T, params string) string {
	t.Helper()
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", agent, "github.com/spraydryfs/spraydryfs/integration/vm/agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	var perr bytes.Buffer
	prep := exec.Command("bash", "vm/prepare.sh", initrd, agent)
	prep.Stderr = &perr
	out, err := prep.Output()
	if err != nil {
		t.Fatalf("vm/prepare.sh: %v\n%s", err, perr.String())
	}
	kernel := strings.TrimSpace(string(out))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", "-M", "q35", "-m", "512", "-accel", "tcg", "-cpu", "max",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1 "+params)
	var console bytes.Buffer
	qemu.Stdout, qemu.Stderr = &console, &console
	start := time.Now()
	err = qemu.Run()
	t.Logf("guest ran %.1fs", time.Since(start).Seconds())
	s := strings.ReplaceAll(console.String(), "\r", "")
	if err != nil || !strings.Contains(s, "=== DONE") {
		t.Fatalf("guest: %v\n%s", err, tail(s, 60))
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// section returns the lines between "=== NAME I" and the next "===" line.
func section(out, name string, i int) []string {
	var lines []string
	in := false
	head := fmt.Sprintf("=== %s %d", name, i)
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == head:
			in = true
		case strings.HasPrefix(l, "=== "):
			in = false
		case in:
			lines = append(lines, l)
		}
	}
	return lines
}

// hostAgent describes the source tree with the agent run on the host.
func hostAgent(t *testing.T, src string) []string {
	t.Helper()
	agent := filepath.Join(t.TempDir(), "agent")
	if out, err := exec.Command("go", "build", "-o", agent, "github.com/spraydryfs/spraydryfs/integration/vm/agent").CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	out, err := exec.Command(agent, src).Output()
	if err != nil {
		t.Fatalf("agent on the source: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

var spaces = regexp.MustCompile(` +`)

func diffLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	sort.Strings(want)
	sort.Strings(got)
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	var bad []string
	for _, l := range want {
		if !g[l] {
			bad = append(bad, "- "+l)
		}
	}
	for _, l := range got {
		if !w[l] {
			bad = append(bad, "+ "+l)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 40 {
			bad = append(bad[:40], fmt.Sprintf("… %d more", len(bad)-40))
		}
		t.Errorf("%s: guest differs from the source (- source, + guest):\n%s", what, strings.Join(bad, "\n"))
	}
}

// TestNinePGuest boots Debian's kernel under QEMU (TCG) and mounts `serve
// 9p` with the real v9fs client twice at once: aname fix@1 (one root) and
// the empty aname (the namespace view, where the root is fix/1). On each
// mount the guest runs ls -laR, md5sum of every file, find -type l and
// on the first, the agent (lstat, readlink, xattrs with probes of absent
// ones, MD5 of every entry); the test
// compares with the fixture source tree and fails on any error, such as
// "Invalid argument".
func TestNinePGuest(t *testing.T) {
	requireVM(t)
	t.Parallel() // a long suite (doc.go)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	fixture.Build(t, src)
	trimMany(t, src, vmManyEntries)
	st := filepath.Join(dir, "s.sdfs")
	ok(t, "-s", st, "ingest", "fix@1", src)
	port, stop := serve9P(t, st)
	out := bootGuest(t, "sdfs.port="+port+" sdfs.m=fix@1 sdfs.m= sdfs.job=check")
	t.Logf("guest timeline (uptime at each step):\n%s", grepLines(out, "=== ", 40))
	if log := stop(); strings.Contains(log, "level=ERROR") {
		t.Errorf("server logged errors:\n%s", log)
	}
	if strings.Contains(out, "Invalid argument") {
		t.Errorf("the guest saw EINVAL:\n%s", grepLines(out, "Invalid argument", 20))
	}
	host := hostAgent(t, src)
	want := wantFiles(t, src)
	for i, prefix := range []string{"", "fix/1"} {
		view := []string{"fix@1", "namespace"}[i]
		if !strings.Contains(out, fmt.Sprintf("=== MOUNT %d rc=0", i)) {
			t.Fatalf("%s: mount failed:\n%s", view, tail(out, 40))
		}
		if !strings.Contains(out, fmt.Sprintf("=== END %d rc=0", i)) {
			t.Errorf("%s: the agent failed:\n%s", view, grepLines(strings.Join(section(out, "AGENT", i), "\n"), "ERROR", 20))
		}
		mnt := fmt.Sprintf("/mnt/%d", i)
		base := mnt
		if prefix != "" {
			base += "/" + prefix
		}
		// ls -laR: no errors (busybox prints "ls: …").
		ls := section(out, "LS", i)
		if len(ls) < vmManyEntries {
			t.Errorf("%s: ls -laR printed %d lines", view, len(ls))
		}
		for _, l := range ls {
			if strings.HasPrefix(l, "ls:") {
				t.Errorf("%s: %s", view, l)
			}
		}
		// md5sum of every file.
		var md5s []string
		for _, l := range section(out, "MD5", i) {
			sum, p, found := strings.Cut(spaces.ReplaceAllString(l, " "), " ")
			if !found || !strings.HasPrefix(p, base+"/") {
				if !strings.HasPrefix(p, mnt+"/") {
					md5s = append(md5s, "odd line: "+l)
				}
				continue
			}
			md5s = append(md5s, p[len(base)+1:]+" "+sum)
		}
		diffLines(t, view+": md5sum", want.md5s, md5s)
		// find -type l.
		var links []string
		for _, l := range section(out, "LINKS", i) {
			if p, found := strings.CutPrefix(l, base+"/"); found {
				links = append(links, p)
			} else if l != mnt+"/fix/latest" {
				links = append(links, "odd line: "+l)
			}
		}
		diffLines(t, view+": find -type l", want.links, links)
		// Everything else, entry by entry. The top directory of the
		// source is a temporary directory: compare its type only.
		if i == 0 { // the agent runs on the first mount only (time)
			diffLines(t, view+": agent", dropTop(host), dropTop(section(out, "AGENT", i)))
		}
	}
	ls := strings.Join(section(out, "LS", 1), "\n")
	if !strings.Contains(ls, " latest -> 1\n") || !slices.Contains(section(out, "LINKS", 1), "/mnt/1/fix/latest") {
		t.Errorf("namespace: no fix/latest -> 1 symlink")
	}
}

// vmManyEntries is how many of fixture.ManyDir's files the VM test keeps:
// the emulated guest (TCG, on a shared 2-core host) takes 20-70 ms per
// file per tool, so the
// whole fixture's 5,000 would take minutes; the unit tests read all 5,000
// (and page through the listing) with the Go client.
const vmManyEntries = 150

// trimMany removes all but the first n files of the fixture's ManyDir.
func trimMany(t *testing.T, src string, n int) {
	t.Helper()
	dir := filepath.Join(src, fixture.ManyDir)
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names[min(n, len(names)):] {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func dropTop(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, `"." `) {
			out = append(out, l)
		}
	}
	return out
}

func grepLines(s, sub string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type files struct{ md5s, links []string }

// wantFiles lists the source's regular files with their MD5 and its
// symlinks, as md5sum and find -type l in the guest print them.
func wantFiles(t *testing.T, src string) files {
	t.Helper()
	var w files
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		switch {
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := md5.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			w.md5s = append(w.md5s, rel+" "+hex.EncodeToString(h.Sum(nil)))
		case d.Type()&fs.ModeSymlink != 0:
			w.links = append(w.links, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestNinePCommand runs `serve 9p` on a Unix socket with a default root,
// attaches with p9's client, and checks usage errors and a clean stop on
// SIGTERM.
func TestNinePCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("hello\n"), 0o644)
	st := filepath.Join(dir, "s.sdfs")
	ok(t, "-s", st, "ingest", "c@1", src)
	ok(t, "-s", st, "ingest", "o@1", src)

	if r := spraydryfs(t, "-s", st, "serve", "9p", "--listen", "unix:"); r.code != 2 {
		t.Errorf("--listen unix: exits %d: %s", r.code, r.stderr)
	}
	if r := spraydryfs(t, "-s", st, "serve", "9p", "--listen", "127.0.0.1:0", "nope@1"); r.code != 1 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("an unknown root: exit %d: %s", r.code, r.stderr)
	}
	if r := spraydryfs(t, "-s", st, "serve", "9p", "a", "b"); r.code != 2 {
		t.Errorf("two roots: exit %d: %s", r.code, r.stderr)
	}

	sock := filepath.Join(dir, "sock")
	cmd := exec.Command(bin, "-s", st, "serve", "9p", "--listen", "unix:"+sock, "c@1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "unix:"+sock {
		t.Errorf("printed %q, want unix:%s", line, sock)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := p9.NewClient(c, p9.WithMessageSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	// c@1 given on the command line is the limit of every attach.
	for _, aname := range []string{"o@1", "o", "c", "c@2"} {
		if _, err := cl.Attach(aname); !errors.Is(err, linux.EACCES) {
			t.Errorf("attach %q serving c@1: %v, want EACCES", aname, err)
		}
	}
	for aname, path := range map[string][]string{"": {"d", "f"}, "c@1/d": {"f"}, "c@latest": {"d", "f"}} {
		root, err := cl.Attach(aname)
		if err != nil {
			t.Fatalf("attach %q: %v", aname, err)
		}
		_, f, err := root.Walk(path)
		if err != nil {
			t.Fatalf("aname %q: walk %v: %v", aname, path, err)
		}
		if _, _, err := f.Open(p9.ReadOnly); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "hello\n" || (err != nil && err != io.EOF) {
			t.Errorf("aname %q: read %q, %v", aname, buf[:n], err)
		}
	}
	// SIGTERM with a client connected: a clean exit, the socket removed.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve 9p exited with %v:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve 9p did not stop on SIGTERM with a client connected")
	}
	cl.Close()
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("the socket is left behind")
	}
}
