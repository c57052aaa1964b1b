package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newServeWebDAVCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "webdav", Short: "Serve roots over WebDAV (not built yet)", Hidden: true,
		RunE: func(*cobra.Command, []string) error { return errors.New("serve webdav: not built yet") }}
}
