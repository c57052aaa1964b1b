package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version returns the main module's version (with the VCS revision when
// the build recorded one), from the binary's build information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" && v == "(devel)" {
		v += " " + rev + dirty
	}
	return v
}

// writeVersion prints the version, the Go version and platform, and every
// module compiled in, from the build information.
func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "spraydryfs %s\n%s %s/%s\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Path != "" {
		fmt.Fprintf(w, "module %s\n", bi.Main.Path)
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		fmt.Fprintf(w, "dep %s %s\n", m.Path, m.Version)
	}
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the version, the Go version and the modules compiled in",
		Long: `Version prints spraydryfs's version (with the VCS revision it was built
from, when known), the Go version and platform, and the path and version of
every module compiled into the binary. --version prints the first line.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			writeVersion(cmd.OutOrStdout())
			return nil
		},
	}
}
