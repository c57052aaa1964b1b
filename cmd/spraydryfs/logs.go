package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// logFile is the --log-file that logs go to; SIGHUP reopens it, so that
// logrotate can move it away.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// openLogFile opens path for appending, creating it.
func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// reopen opens the file at the path again and closes the one it replaces.
func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write implements io.Writer.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// setUpLogs checks --log-format and opens --log-file, then makes the
// default logger: warnings and errors, everything with -v.
func (g *globals) setUpLogs() error {
	if g.logFormat != "text" && g.logFormat != "json" {
		return usageError{fmt.Errorf("--log-format %q: use text or json", g.logFormat)}
	}
	if g.logPath != "" {
		l, err := openLogFile(g.logPath)
		if err != nil {
			return err
		}
		g.logFile = l
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	g.log = g.newLogger(level)
	slog.SetDefault(g.log)
	return nil
}

// newLogger returns a logger of messages at level and above, in the
// --log-format, to the --log-file or else stderr.
func (g *globals) newLogger(level slog.Level) *slog.Logger {
	var w io.Writer = os.Stderr
	if g.logFile != nil {
		w = g.logFile
	}
	opt := &slog.HandlerOptions{Level: level}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opt))
	}
	return slog.New(slog.NewTextHandler(w, opt))
}

// reopenLogs reopens the --log-file on SIGHUP; logging to stderr, there
// is nothing to reopen, which is logged.
func (g *globals) reopenLogs() {
	if g.logFile == nil {
		g.log.Warn("SIGHUP: logging to stderr, nothing to reopen")
		return
	}
	if err := g.logFile.reopen(); err != nil {
		g.log.Error("SIGHUP: " + err.Error())
		return
	}
	g.log.Info("SIGHUP: log file reopened", "path", g.logPath)
}
