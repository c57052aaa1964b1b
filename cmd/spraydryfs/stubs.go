package main

import "github.com/spf13/cobra"

func newExtractCommand(g *globals) *cobra.Command { return &cobra.Command{Use: "extract"} }
