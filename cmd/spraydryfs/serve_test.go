package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeFailsBeforeAnnouncing: a server that cannot serve says so and
// exits 1 without printing an address or "serving" first: a bad TLS
// certificate or key, a password file it cannot read, an address in use.
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
	} {
		t.Run(c.name, func(t *testing.T) {
			r := cli(t, append([]string{"-s", st, "serve"}, append(c.args, "a@1")...)...)
			wantFail(t, r, 1, c.want)
			if r.stdout != "" || strings.Contains(r.stderr, "serving") {
				t.Errorf("announced before failing: stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}
