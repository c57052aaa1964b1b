package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// keygen makes a key pair at path and returns the printed public key.
func keygen(t *testing.T, path string) string {
	t.Helper()
	r := cli(t, "keygen", path)
	if r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	return strings.TrimSpace(r.stdout)
}

// TestKeygen: keygen writes a secret key only its owner reads and the
// public key beside it, prints the public key, and overwrites nothing
// without --force.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "publish.key")
	pub := keygen(t, key)
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v, %v", st, err)
	}
	sec, _ := os.ReadFile(key)
	k, err := layout.ParseSecretKey(string(sec))
	if err != nil {
		t.Fatal(err)
	}
	if want := layout.FormatPublicKey(k.Public().(ed25519.PublicKey)); pub != want {
		t.Fatalf("printed %q, want the secret key's public key %q", pub, want)
	}
	if got, _ := os.ReadFile(key + ".pub"); string(got) != pub+"\n" {
		t.Fatalf(".pub holds %q, printed %q", got, pub)
	}
	wantFail(t, cli(t, "keygen", key), 1, "exists")
	os.Remove(key)
	wantFail(t, cli(t, "keygen", key), 1, "publish.key.pub exists")
	if again, _ := os.ReadFile(key + ".pub"); string(again) != pub+"\n" {
		t.Fatal("a refused keygen changed the public key")
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("a refused keygen wrote a secret key")
	}
	if other := keygen(t, key+"2"); other == pub {
		t.Fatal("two keygens made the same key")
	}
	r := cli(t, "keygen", "--force", key)
	if r.code != 0 || strings.TrimSpace(r.stdout) == pub {
		t.Fatalf("keygen --force: %+v", r)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret key after --force: %v, %v", st, err)
	}
	wantFail(t, cli(t, "keygen"), 2, "accepts 1 arg")
}

// serveHTTP starts `serve http` of store st on loopback with more flags
// and returns its URL.
func serveHTTP(t *testing.T, st string, flags ...string) string {
	t.Helper()
	cmd := command(append([]string{"-s", st, "serve", "http", "--listen", "127.0.0.1:0", "-q"}, flags...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve http: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve http exited with %v:\n%s", err, stderr.String())
		}
	})
	return strings.TrimSpace(url)
}

// TestSignedLayoutCLI: push --sign to a directory, read it with --trust
// (a .pub file, the key's line, $SPRAYDRYFS_TRUST), and refuse with exit
// 1 and one line: a flipped byte in the index, an unsigned index, another
// key's index. Pushes neither sign an unsigned index nor unsign a signed
// one without --take-over. serve http --sign is read over HTTP alike.
func TestSignedLayoutCLI(t *testing.T) {
	dir := t.TempDir()
	src, st, pubDir, plainDir := filepath.Join(dir, "src"), filepath.Join(dir, "s.sdfs"), filepath.Join(dir, "pub"), filepath.Join(dir, "plain")
	writeFiles(t, src, map[string][]byte{"f": []byte("signed content"), "d/g": noise(300<<10, 1)})
	for _, id := range []string{"a@1", "a@2"} {
		if r := cli(t, "-s", st, "ingest", id, src); r.code != 0 {
			t.Fatalf("ingest: %+v", r)
		}
	}
	key, other := filepath.Join(dir, "k"), filepath.Join(dir, "other")
	pubLine := keygen(t, key)
	keygen(t, other)

	if r := cli(t, "-s", st, "push", "--sign", key, pubDir, "a@1"); r.code != 0 {
		t.Fatalf("push --sign: %+v", r)
	}
	if r := cli(t, "-s", pubDir, "--trust", key+".pub", "roots"); r.code != 0 || !strings.Contains(r.stdout, "a") || !strings.Contains(r.stdout, "1") {
		t.Fatalf("roots --trust KEY.pub: %+v", r)
	}
	if r := cli(t, "-s", pubDir, "--trust", other+".pub", "--trust", pubLine, "cat", "a@1/f"); r.code != 0 || r.stdout != "signed content" {
		t.Fatalf("cat --trust OTHER --trust LINE: %+v", r)
	}
	cmd := command("-s", pubDir, "cat", "a@1/f")
	cmd.Env = append(cmd.Env, "SPRAYDRYFS_TRUST="+other+".pub")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a trusted key") {
		t.Fatalf("$SPRAYDRYFS_TRUST with another key: %v, %s", err, out)
	}
	wantFail(t, cli(t, "-s", pubDir, "--trust", other+".pub", "roots"), 1, "not a trusted key")
	wantFail(t, cli(t, "-s", pubDir, "--trust", key, "roots"), 2, "is a secret key")
	wantFail(t, cli(t, "-s", pubDir, "--trust", filepath.Join(dir, "nope.pub"), "roots"), 2, "no such file")
	wantFail(t, cli(t, "-s", pubDir, "--trust", layout.PublicKeyPrefix+"AAAA", "roots"), 2, "malformed key")

	// A push that does not sign leaves the signed index alone.
	wantFail(t, cli(t, "-s", st, "push", pubDir, "a@2"), 1, "does not sign")
	// A second signed push merges and signs again.
	if r := cli(t, "-s", st, "push", "--sign", key, pubDir, "a@2"); r.code != 0 {
		t.Fatalf("second push --sign: %+v", r)
	}
	if r := cli(t, "-s", pubDir, "--trust", key+".pub", "cat", "a@2/f"); r.code != 0 {
		t.Fatalf("a@2 after the second signed push: %+v", r)
	}

	// One flipped byte in the index, inside or outside the signed part.
	index := filepath.Join(pubDir, layout.IndexKey)
	good, _ := os.ReadFile(index)
	for _, at := range []int{bytes.Index(good, []byte(`"files"`)) + 1, bytes.Index(good, []byte(`"key"`)) - 2, len(good) - 10} {
		bad := bytes.Clone(good)
		bad[at] ^= 0x01
		os.WriteFile(index, bad, 0o644)
		wantFail(t, cli(t, "-s", pubDir, "--trust", key+".pub", "roots"), 1, "roots index")
		wantFail(t, cli(t, "-s", pubDir, "--trust", key+".pub", "cat", "a@1/f"), 1, "corrupt")
	}
	os.WriteFile(index, good, 0o644)

	// An unsigned index, trusted keys given.
	if r := cli(t, "-s", st, "push", plainDir, "a@1"); r.code != 0 {
		t.Fatalf("push: %+v", r)
	}
	if r := cli(t, "-s", plainDir, "roots"); r.code != 0 {
		t.Fatalf("roots of an unsigned layout: %+v", r)
	}
	wantFail(t, cli(t, "-s", plainDir, "--trust", key+".pub", "roots"), 1, "it is not signed")
	wantFail(t, cli(t, "-s", plainDir, "--trust", key+".pub", "check", "--read-data"), 1, "it is not signed")
	wantFail(t, cli(t, "-s", st, "push", "--sign", key, plainDir, "a@2"), 1, "--take-over")
	if r := cli(t, "-s", st, "push", "--sign", key, "--take-over", plainDir, "a@2"); r.code != 0 {
		t.Fatalf("push --sign --take-over: %+v", r)
	}
	if r := cli(t, "-s", plainDir, "--trust", key+".pub", "cat", "a@1/f"); r.code != 0 {
		t.Fatalf("taken-over layout: %+v", r)
	}
	os.Chmod(key, 0o644)
	wantFail(t, cli(t, "-s", st, "push", "--sign", key, plainDir), 2, "readable by others")
	os.Chmod(key, 0o600)

	// serve http --sign, read over HTTP with --trust.
	url := serveHTTP(t, st, "--sign", key)
	if r := cli(t, "-s", url, "--trust", key+".pub", "cat", "a@2/f"); r.code != 0 || r.stdout != "signed content" {
		t.Fatalf("serve http --sign, read with --trust: %+v", r)
	}
	wantFail(t, cli(t, "-s", url, "--trust", other+".pub", "roots"), 1, "not a trusted key")
	wantFail(t, cli(t, "-s", serveHTTP(t, st), "--trust", key+".pub", "roots"), 1, "it is not signed")
	wantFail(t, cli(t, "-s", st, "serve", "--webdav", "127.0.0.1:0", "--sign", key), 2, "give --http ADDR")
}
