package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newServe9PCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "9p", Short: "Serve roots over 9P2000.L (not built yet)", Hidden: true,
		RunE: func(*cobra.Command, []string) error { return errors.New("serve 9p: not built yet") }}
}
