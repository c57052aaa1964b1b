package main

import (
	"context"
	"log/slog"
)

// notifyReady tells whoever started this server that it is serving: the
// parent of a background server, which then returns. Call it once the
// mount is up or the listener open.
func notifyReady(ctx context.Context) {
	if err := detachFromParent(); err != nil {
		slog.Warn(err.Error())
	}
}
