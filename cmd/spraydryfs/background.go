//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Background serving (mount --background, the mount helper): the command
// runs its own command line again as a detached child (a new session,
// stdin and stdout /dev/null) and waits. The child's stderr is a pipe the
// parent copies to its own until the child is ready, so start-up errors
// and warnings reach the caller; once mounted (notifyReady), the child
// writes "READY" on a second pipe and moves its stderr to its final log
// (the journal when the parent's stderr is one, else /dev/null). The
// parent then exits 0; if the child exits first, the parent exits with
// its code.

// readyFDEnv tells a child it is the background server, and which file
// descriptor to report readiness on; its log file is the next one.
const readyFDEnv = "SPRAYDRYFS_READY_FD"

const readyMessage = "READY\n"

// backgroundChild holds a background server's link to its parent.
type backgroundChild struct {
	ready, log *os.File
}

// bgChild is this process's link to its parent if it is a background
// server, else nil. The environment variable is removed so that nothing
// this process starts takes itself for one.
var bgChild = takeDaemonFiles()

func takeDaemonFiles() *backgroundChild {
	v, ok := os.LookupEnv(readyFDEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(readyFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	syscall.CloseOnExec(fd + 1)
	return &backgroundChild{ready: os.NewFile(uintptr(fd), "ready"), log: os.NewFile(uintptr(fd+1), "log")}
}

// isDaemonChild reports whether this process is a background server.
func isDaemonChild() bool { return bgChild != nil }

// detachFromParent reports readiness to the parent if this process is a
// background server (see detach).
func detachFromParent() error {
	if bgChild == nil {
		return nil
	}
	return bgChild.detach()
}

// detach reports readiness to the parent and moves stderr to the final
// log, closing the pipe the parent reads.
func (b *backgroundChild) detach() error {
	err := unix.Dup2(int(b.log.Fd()), 2)
	b.log.Close()
	if _, werr := io.WriteString(b.ready, readyMessage); err == nil {
		err = werr
	}
	b.ready.Close()
	if err != nil {
		return fmt.Errorf("report readiness to the parent: %w", err)
	}
	return nil
}

// goBackground makes the caller a background server if on: in the parent
// it starts the child and exits with the outcome (it only returns an
// error that kept the child from starting, or an interruption); in the
// child, or if !on, it returns nil and the caller serves.
func goBackground(ctx context.Context, on bool) error {
	if !on || bgChild != nil {
		return nil
	}
	code, err := runBackground(ctx)
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// runBackground starts the child and waits until it is ready (0) or has
// exited (its code). Whatever the child writes on stderr meanwhile is
// copied to ours.
func runBackground(ctx context.Context) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("background: find own executable: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("background: %w", err)
	}
	defer readyR.Close()
	logR, logW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return 0, fmt.Errorf("background: %w", err)
	}
	defer logR.Close()
	final, err := finalLog()
	if err != nil {
		readyW.Close()
		logW.Close()
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0] // the mount helper knows itself by its name
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stderr = logW
	cmd.ExtraFiles = []*os.File{readyW, final}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	logW.Close()
	if final != os.Stderr {
		final.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("background: start server: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(os.Stderr, logR)
		close(copied)
	}()
	readyc := make(chan bool, 1)
	go func() {
		b, _ := io.ReadAll(readyR)
		readyc <- string(b) == readyMessage
	}()
	select {
	case ready := <-readyc:
		if ready {
			select { // the child has closed its end; a grandchild may hold it
			case <-copied:
			case <-time.After(time.Second):
			}
			return 0, nil
		}
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		return 0, errors.New("interrupted before the mount was ready")
	}
	err = cmd.Wait()
	<-copied
	if code := cmd.ProcessState.ExitCode(); code > 0 {
		return code, nil
	}
	fmt.Fprintf(os.Stderr, "%s: the background server died before the mount was ready: %v\n", progName(), err)
	if isMountHelper(os.Args[0]) {
		return exitMountFail, nil
	}
	return 1, nil
}

// finalLog is where a background server logs once ready: our stderr if
// it is systemd's journal (JOURNAL_STREAM names it), else /dev/null.
func finalLog() (*os.File, error) {
	if j := os.Getenv("JOURNAL_STREAM"); j != "" {
		var st syscall.Stat_t
		if syscall.Fstat(2, &st) == nil && j == fmt.Sprintf("%d:%d", st.Dev, st.Ino) {
			return os.Stderr, nil
		}
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("background: %w", err)
	}
	return f, nil
}

// progName is the name errors start with.
func progName() string {
	if isMountHelper(os.Args[0]) {
		return helperName
	}
	return "spraydryfs"
}
