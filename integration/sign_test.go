//go:build linux

package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// TestRemoteSignedIndex: a layout pushed with --sign and served by a real
// nginx as plain files mounts with the public key trusted (here through
// $SPRAYDRYFS_TRUST) and reads byte-exact. With one byte of its index
// flipped, or with an unsigned index, mount and serve webdav refuse to
// start: exit 1, one line, nothing mounted.
func TestRemoteSignedIndex(t *testing.T) {
	requireFUSE(t)
	s := newStaticSuite(t)
	st, src := remoteStore(t, 30)
	key := filepath.Join(t.TempDir(), "publish.key")
	ok(t, "keygen", key)
	signed, plain := filepath.Join(s.root, "signed"), filepath.Join(s.root, "plain")
	ok(t, "-s", st, "push", "--sign", key, signed)
	ok(t, "-s", st, "push", plain)
	t.Setenv("SPRAYDRYFS_TRUST", key+".pub")

	mnt, stop := mountFUSE(t, s.srv.url("signed/"), "r@1")
	for _, p := range []string{filepath.Join("d0", "f0000.txt"), filepath.Join("d3", "f0003.txt")} {
		want, _ := os.ReadFile(filepath.Join(src, p))
		if got, err := os.ReadFile(filepath.Join(mnt, p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s through the trusted mount: %d bytes, %v", p, len(got), err)
		}
	}
	stop()

	index := filepath.Join(signed, layout.IndexKey)
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte(`"bytes"`))
	at += bytes.IndexByte(b[at:], '\n') - 1
	b[at] ^= 0x01 // the last digit of a root's size: still valid JSON
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ layout, want string }{{"signed/", "signature does not verify"}, {"plain/", "it is not signed"}} {
		url := s.srv.url(c.layout)
		dir := t.TempDir()
		wantFail(t, spraydryfs(t, "-s", url, "mount", dir, "r@1"), 1, c.want)
		if mounted(dir) {
			t.Errorf("%s: mounted despite a refused index", c.layout)
		}
		r := spraydryfs(t, "-s", url, "serve", "webdav", "--listen", "127.0.0.1:0", "r@1")
		wantFail(t, r, 1, c.want)
		if r.stdout != "" {
			t.Errorf("%s: serve webdav announced %q before refusing", c.layout, r.stdout)
		}
	}
}
