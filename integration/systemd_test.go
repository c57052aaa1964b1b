//go:build linux

package integration

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// unitDir holds the example systemd units.
const unitDir = "../dist/systemd"

// unitValues reads the Key=Value lines of a unit file.
func unitValues(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			v[k] = val
		}
	}
	return v
}

// TestSystemdUnits checks the example units in dist/systemd: systemd's
// own verifier accepts them (with this test's binary in place of
// /usr/local/bin/spraydryfs), and each service's ExecStart, run with this
// test's store, mount point and addresses, tells a fake notify socket
// READY=1 once it serves (what Type=notify waits for) and STOPPING=1 on
// SIGTERM; the mount unit's What/Where/Type/Options mount through
// mount(8) and the helper.
func TestSystemdUnits(t *testing.T) {
	units, _ := filepath.Glob(filepath.Join(unitDir, "*"))
	if len(units) != 4 {
		t.Fatalf("want 4 units in %s, got %q", unitDir, units)
	}
	st, _, big := opsStore(t)
	replacer := func(extra ...string) *strings.Replacer {
		return strings.NewReplacer(append([]string{"/usr/local/bin/spraydryfs", bin, "/srv/trees.sdfs", st}, extra...)...)
	}

	t.Run("verify", func(t *testing.T) {
		unavailable(t, "systemd-analyze verify", missingTools("Debian systemd", "systemd-analyze"))
		dir := t.TempDir()
		var paths []string
		for _, u := range units {
			b, err := os.ReadFile(u)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.Base(u))
			os.WriteFile(p, []byte(replacer().Replace(string(b))), 0o644)
			paths = append(paths, p)
		}
		if r := runCmd(t, "systemd-analyze", append([]string{"verify"}, paths...)...); r.code != 0 || r.stderr != "" {
			t.Errorf("systemd-analyze verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	execStart := func(t *testing.T, unit string, r *strings.Replacer) *notified {
		v := unitValues(t, filepath.Join(unitDir, unit))
		if v["Type"] != "notify" {
			t.Errorf("%s: Type=%s, want notify", unit, v["Type"])
		}
		args := strings.Fields(r.Replace(v["ExecStart"]))
		if len(args) == 0 || args[0] != bin {
			t.Fatalf("%s: ExecStart=%s", unit, v["ExecStart"])
		}
		p := startNotified(t, args[1:]...)
		awaitMessage(t, p.msgs, "READY=1")
		return p
	}

	t.Run("spraydryfs-mount.service", func(t *testing.T) {
		requireFUSE(t)
		dir := t.TempDir()
		p := execStart(t, "spraydryfs-mount.service", replacer("/mnt/trees", dir))
		if got, err := os.ReadFile(filepath.Join(dir, "t/1/big")); err != nil || !bytes.Equal(got, big) {
			t.Errorf("read after READY=1: %d bytes, %v", len(got), err)
		}
		p.stop(t)
		if mounted(dir) {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Error("still mounted after SIGTERM")
		}
	})

	t.Run("spraydryfs-webdav.service", func(t *testing.T) {
		p := execStart(t, "spraydryfs-webdav.service", replacer("127.0.0.1:8080", "127.0.0.1:0"))
		resp, err := http.Get(p.firstLine(t) + "t/1/big")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, big) {
			t.Errorf("GET: %s, %d bytes, %v", resp.Status, len(got), err)
		}
		p.stop(t)
	})

	t.Run("spraydryfs-9p.service", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "9p.sock")
		p := execStart(t, "spraydryfs-9p.service", replacer("/run/spraydryfs/9p.sock", sock))
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		p.stop(t)
	})

	t.Run("mnt-trees.mount", func(t *testing.T) {
		installHelper(t)
		dir := t.TempDir()
		v := unitValues(t, filepath.Join(unitDir, "mnt-trees.mount"))
		r := replacer("/mnt/trees", dir)
		res := runCmd(t, "mount", "-t", v["Type"], r.Replace(v["What"]), r.Replace(v["Where"]), "-o", v["Options"])
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("mount as mnt-trees.mount says: exit %d\n%s", res.code, res.stderr)
		}
		pid := checkServed(t, dir, "t/1/big", big)
		unmountAndWait(t, dir, pid, "umount")
	})
}
