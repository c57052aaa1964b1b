package main

import (
	"context"
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells whoever started this server that it is serving: the
// parent of a background server, which then returns, and systemd
// (Type=notify units: READY=1 now, STOPPING=1 once ctx ends, which is on
// SIGINT or SIGTERM). Call it once the mount is up or the listener open,
// and the function it returns before exiting: it waits for STOPPING=1 to
// be sent if ctx has ended, so that the process cannot exit first.
func notifyReady(ctx context.Context) (wait func()) {
	if err := detachFromParent(); err != nil {
		slog.Warn(err.Error())
	}
	sdNotify("READY=1")
	sent := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		sdNotify("STOPPING=1")
		close(sent)
	})
	return func() {
		if !stop() {
			<-sent
		}
	}
}

// sdNotify sends state to systemd's notify socket if NOTIFY_SOCKET names
// one.
func sdNotify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		slog.Warn("systemd notify failed", "state", state, "err", err)
	}
}
