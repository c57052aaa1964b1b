package main

import "github.com/spf13/cobra"

func newServeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve webdav|9p|http",
		Short: "Serve roots read-only over WebDAV or 9P2000.L, or as a published layout over HTTP",
		Long: `Serve shares the store's roots read-only over a network protocol, on a
loopback address unless told otherwise, until interrupted.`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newServeWebDAVCommand(g), newServe9PCommand(g), newServeHTTPCommand(g))
	return cmd
}
