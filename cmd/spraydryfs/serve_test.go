package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeFailsBeforeAnnouncing: a server that cannot serve says so and
// exits 1 (2 for a wrong call) without printing an address or "serving"
// first: a bad TLS certificate or key, a password file it cannot read, an
// address in use, a missing mount point; serve with several frontends
// checks them all first.
func TestServeFailsBeforeAnnouncing(t *testing.T) {
	dir := t.TempDir()
	src, st := filepath.Join(dir, "src"), filepath.Join(dir, "s.sdfs")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	if r := cli(t, "-s", st, "ingest", "a@1", src); r.code != 0 {
		t.Fatalf("ingest: %+v", r)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate\n"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad TLS pair", []string{"webdav", "--listen", "127.0.0.1:0", "--tls-cert", bad, "--tls-key", bad}, "TLS certificate"},
		{"missing TLS files", []string{"webdav", "--listen", "127.0.0.1:0", "--tls-cert", bad + ".no", "--tls-key", bad + ".no"}, "no such file"},
		{"missing htpasswd", []string{"webdav", "--listen", "127.0.0.1:0", "--htpasswd", bad + ".no"}, "htpasswd"},
		{"webdav address in use", []string{"webdav", "--listen", busy.Addr().String()}, "address already in use"},
		{"9p address in use", []string{"9p", "--listen", busy.Addr().String()}, "address already in use"},
		{"9p socket directory missing", []string{"9p", "--listen", "unix:" + filepath.Join(dir, "no", "sock")}, "no such file"},
		{"serve: 9p address in use", []string{"--webdav", "127.0.0.1:0", "--9p", busy.Addr().String()}, "address already in use"},
		{"serve: mount point missing", []string{"--webdav", "127.0.0.1:0", "--9p", "127.0.0.1:0", "--mount", filepath.Join(dir, "no")}, "no such file"},
		{"serve: bad TLS pair", []string{"--webdav", "127.0.0.1:0", "--tls-cert", bad, "--tls-key", bad}, "TLS certificate"},
		{"serve: http root with a path", []string{"--webdav", "127.0.0.1:0", "--http", "127.0.0.1:0", "a@1/f"}, "without a path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := c.args
			if !strings.Contains(a[len(a)-1], "@") {
				a = append(a, "a@1")
			}
			r := cli(t, append([]string{"-s", st, "serve"}, a...)...)
			code := 1
			if strings.HasSuffix(c.name, "path") {
				code = 2
			}
			wantFail(t, r, code, c.want)
			if r.stdout != "" || strings.Contains(r.stderr, "serving") {
				t.Errorf("announced before failing: stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}

// TestServeNeedsAFrontend: serve without a frontend flag is a usage error
// naming the flags; serve --help still works.
func TestServeNeedsAFrontend(t *testing.T) {
	wantFail(t, cli(t, "-s", "x.sdfs", "serve"), 2, "--webdav ADDR, --9p ADDR, --http ADDR or --mount DIR")
	if r := cli(t, "serve", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--mount") {
		t.Errorf("serve --help: %+v", r)
	}
}
