//go:build linux

package integration

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// opsStore stores a small tree as t@1 (a multi-chunk file and a small
// one in a subdirectory) and returns the store, the source and the big
// file's content.
func opsStore(t *testing.T) (st, src string, big []byte) {
	t.Helper()
	dir := t.TempDir()
	st, src = filepath.Join(dir, "s.sdfs"), filepath.Join(dir, "src")
	big = bytes.Repeat([]byte("spray, dry, rehydrate: "), 40000) // ~900 KiB, several chunks
	for i := range big {
		if i%997 == 0 {
			big[i] = byte(i >> 10)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "sub", "small"), []byte("small\n"), 0o644)
	ok(t, "-s", st, "ingest", "t@1", src)
	return st, src, big
}

// notifySocket listens like systemd's notify socket (a unixgram socket
// named by NOTIFY_SOCKET) and returns its path and the messages received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

// awaitMessage waits for the next notify message and checks it is want.
func awaitMessage(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	select {
	case m := <-msgs:
		if m != want {
			t.Fatalf("notify message %q, want %q", m, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s within 20 s", want)
	}
}

// notified is a spraydryfs process started with NOTIFY_SOCKET set.
type notified struct {
	cmd            *exec.Cmd
	msgs           <-chan string // what it sent on the notify socket
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when it has exited, with err
	err            error
}

func startNotified(t *testing.T, args ...string) *notified {
	t.Helper()
	sock, msgs := notifySocket(t)
	p := &notified{cmd: exec.Command(bin, args...), msgs: msgs, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// firstLine waits for the first line the process prints on stdout.
func (p *notified) firstLine(t *testing.T) string {
	t.Helper()
	for i := 0; i < 500; i++ {
		if line, _, ok := strings.Cut(p.stdout.String(), "\n"); ok {
			return line
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing printed on stdout; stderr:\n%s", p.stderr.String())
	return ""
}

// stop sends SIGTERM and expects STOPPING=1 and a clean exit.
func (p *notified) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	awaitMessage(t, p.msgs, "STOPPING=1")
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("did not stop on SIGTERM")
	}
}

// TestNotifyReadiness checks systemd's Type=notify protocol through a fake
// notify socket: READY=1 arrives only once the FUSE mount is in the
// kernel, or the WebDAV or 9P listener accepts connections (each checked
// the moment READY=1 arrives, without retrying), and STOPPING=1 when
// SIGTERM starts the shutdown.
func TestNotifyReadiness(t *testing.T) {
	st, _, big := opsStore(t)

	t.Run("mount", func(t *testing.T) {
		requireFUSE(t)
		dir := t.TempDir()
		p := startNotified(t, "-s", st, "mount", dir, "t@1")
		awaitMessage(t, p.msgs, "READY=1")
		if !mounted(dir) {
			t.Fatalf("READY=1 before %s was mounted", dir)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "big")); err != nil || !bytes.Equal(got, big) {
			t.Errorf("read after READY=1: %d bytes, %v", len(got), err)
		}
		p.stop(t)
		if mounted(dir) {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Error("still mounted after SIGTERM")
		}
	})

	t.Run("webdav", func(t *testing.T) {
		p := startNotified(t, "-s", st, "serve", "webdav", "--listen", "127.0.0.1:0", "-q", "t@1")
		awaitMessage(t, p.msgs, "READY=1")
		resp, err := http.Get(p.firstLine(t) + "big")
		if err != nil {
			t.Fatalf("GET right after READY=1: %v", err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, big) {
			t.Errorf("GET big: %s, %d bytes, %v", resp.Status, len(got), err)
		}
		p.stop(t)
	})

	t.Run("9p", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "9p.sock")
		p := startNotified(t, "-s", st, "serve", "9p", "--listen", "unix:"+sock, "t@1")
		awaitMessage(t, p.msgs, "READY=1")
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("dial right after READY=1: %v", err)
		}
		c.Close()
		p.stop(t)
	})

}
