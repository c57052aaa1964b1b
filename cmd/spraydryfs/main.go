// Command spraydryfs stores directory trees as deduplicated, compressed,
// versioned roots in one SQLite file, and serves them back read-only.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

// globals holds the options every subcommand shares.
type globals struct {
	storePath string
	verbose   bool
	log       *slog.Logger
	remote    remoteOptions // --cache-dir, --cache-size, --no-cache
	// metricsAddr is the --metrics address of a server command.
	metricsAddr string
	logFormat   string   // --log-format: text or json
	logPath     string   // --log-file, or "" for stderr
	logFile     *logFile // open when logPath is set
	// trustArgs are the --trust values; trust their keys, one of which
	// must have signed the index of any layout read (none: no check).
	trustArgs []string
	trust     []ed25519.PublicKey
}

func main() {
	if isMountHelper(os.Args[0]) {
		os.Exit(runMountHelper(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// SPRAYDRYFS_CPUPROFILE=FILE writes a CPU profile, for benchmarks.
	if p := os.Getenv("SPRAYDRYFS_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	// SPRAYDRYFS_HEAPPROFILE=FILE writes a heap profile at exit.
	if p := os.Getenv("SPRAYDRYFS_HEAPPROFILE"); p != "" {
		defer func() {
			if f, err := os.Create(p); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}()
	}
	g := &globals{}
	root := newRootCommand(g)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var xe exitError
	if errors.As(err, &xe) && xe.err == nil {
		return xe.code
	}
	fmt.Fprintln(os.Stderr, "spraydryfs:", err)
	if errors.As(err, &xe) {
		return xe.code
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "spraydryfs",
		Short: "A read-only, content-addressed, versioned file system in one SQLite file",
		Long: `SprayDryFS cuts files into content-defined chunks (spray), compresses each
chunk with zstd (dry), and serves the trees back byte-exact (rehydrate).
Identical chunks, files and directories are stored once across all roots.

The store is one SQLite file, chosen with -s/--store or $SPRAYDRYFS_STORE.
Roots are named NAME@VERSION. Reading commands also read a published
layout (see push): a directory, or a remote at http(s)://HOST/PREFIX.
A remote is read through a local cache (--cache-dir, --cache-size): every
object is verified before it is kept, and with the remote down what is
cached still reads (the last roots index seen is kept too).`,
		Version:       version() + " " + runtime.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := g.setUpLogs(); err != nil {
				return err
			}
			return g.loadTrust()
		},
	}
	root.PersistentFlags().StringVarP(&g.storePath, "store", "s", os.Getenv("SPRAYDRYFS_STORE"), "store file; reading commands also take a published layout: a directory, http(s)://HOST/PREFIX or s3://BUCKET/PREFIX (S3 endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE or ~/.aws) (default $SPRAYDRYFS_STORE)")
	root.PersistentFlags().StringArrayVar(&g.trustArgs, "trust", trustFromEnv(), "require a published layout's index to be signed by `PUBKEY`, a KEYFILE.pub or its line (repeatable: any of them; default $SPRAYDRYFS_TRUST, a list like PATH); an unsigned or otherwise signed index is refused")
	root.PersistentFlags().StringVar(&g.remote.CacheDir, "cache-dir", "", "`DIR` of the local cache of remote stores (-s http(s)://…), shared by every remote and process (default $XDG_CACHE_HOME/spraydryfs, else ~/.cache/spraydryfs)")
	root.PersistentFlags().Var(sizeFlag{&g.remote.CacheSize}, "cache-size", "bytes the local cache may hold, e.g. 500MiB or 20GiB; the least recently used objects go first (default 2GiB)")
	root.PersistentFlags().BoolVar(&g.remote.NoCache, "no-cache", false, "read remote stores without the local cache")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug messages")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log lines as text (key=value) or json")
	root.PersistentFlags().StringVar(&g.logPath, "log-file", "", "log to this file instead of stderr (servers reopen it on SIGHUP)")
	root.SetVersionTemplate("spraydryfs {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newIngestCommand(g),
		newRootsCommand(g),
		newLsCommand(g),
		newCatCommand(g),
		newExtractCommand(g),
		newCheckCommand(g),
		newStatsCommand(g),
		newMountCommand(g),
		newServeCommand(g),
		newTrainCommand(g),
		newDictsCommand(g),
		newRecompressCommand(g),
		newDiffCommand(g),
		newDuCommand(g),
		newRmCommand(g),
		newPushCommand(g),
		newPullCommand(g),
		newKeygenCommand(),
		newVersionCommand(),
		newGCCommand(g),
	)
	usageErrors(root)
	return root
}

// usageErrors makes every wrong call a usage error (exit 2, one line):
// an unknown subcommand of a command that only groups others (the root,
// serve, completion), and wrong arguments to cobra's own help and
// completion commands. A group called alone prints its help.
func usageErrors(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command, builtin bool)
	walk = func(c *cobra.Command, builtin bool) {
		switch {
		case c.HasSubCommands() && !c.Runnable():
			c.Args = unknownSubcommand
			c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		case builtin && c.Args != nil:
			c.Args = args(c.Args)
		}
		for _, k := range c.Commands() {
			walk(k, builtin || k.Name() == "completion")
		}
	}
	walk(root, false)
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Args = func(_ *cobra.Command, a []string) error {
				if found, rest, err := root.Find(a); err != nil || len(rest) > 0 {
					return unknownSubcommand(found, rest)
				}
				return nil
			}
		}
	}
}

// unknownSubcommand rejects arguments to a command that only groups others.
func unknownSubcommand(cmd *cobra.Command, a []string) error {
	if len(a) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Errorf("%s (see '%s --help')", msg, cmd.CommandPath())}
}

// args wraps a cobra argument validator so that its errors exit with 2.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{fmt.Errorf("%s: %w (see '%s --help')", cmd.Name(), err, cmd.CommandPath())}
		}
		return nil
	}
}

// open opens the store for reading, or for writing (creating it) if write.
func (g *globals) open(write bool) (*store.Store, error) {
	if g.storePath == "" {
		return nil, usageError{errors.New("no store given: use -s/--store PATH or set SPRAYDRYFS_STORE")}
	}
	return g.openFile(g.storePath, write)
}

// openFile opens store file p for reading, or for writing (creating it)
// if write.
func (g *globals) openFile(p string, write bool) (*store.Store, error) {
	return store.Open(p, store.Options{Create: write, ReadOnly: !write})
}

// sizeFlag is a flag holding a size in bytes, given as 2GiB, 500MiB, 1e9…
type sizeFlag struct{ n *int64 }

// String implements pflag.Value.
func (f sizeFlag) String() string {
	if f.n == nil || *f.n == 0 {
		return ""
	}
	return strconv.FormatInt(*f.n, 10)
}

// Set implements pflag.Value.
func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// Type implements pflag.Value.
func (sizeFlag) Type() string { return "SIZE" }
