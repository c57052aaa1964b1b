package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/push"
)

func newPushCommand(g *globals) *cobra.Command {
	var (
		workers  int
		sign     string
		takeOver bool
		noPacks  bool
	)
	cmd := &cobra.Command{
		Use:   "push DEST [NAME[@VERSION]...]",
		Short: "Publish roots as a layout that any web server can serve",
		Long: `Push copies roots (all of them, or the names and versions given) from the
store (-s) into DEST, a published layout: immutable objects named by their
content address under objects/<kind>/ab/cdef…, and one small index.json
naming the roots. DEST is a directory (serve it with any static web
server) or an S3 bucket prefix, s3://BUCKET/PREFIX; read either anywhere
with -s http://HOST/PREFIX, -s s3://BUCKET/PREFIX or -s DIR. DEST may also
be a store file (an existing file, or a new path ending in .sdfs), as with
pull.

Only objects DEST lacks are read and sent, in parallel; each is verified
against its address first and written atomically (a directory: temporary
file and rename; S3: one PUT, with If-None-Match: *). The index is merged
with DEST's (pushes of different roots keep each other's: a directory is
locked, an S3 index is replaced with If-Match on the ETag read, and read
again if another push replaced it first) and written last, after
everything it names is stored: a push that is interrupted or killed
publishes nothing new, and running it again sends only what is still
missing. A NAME@VERSION already published with other content is refused.

Listings are sent whole (one request each for a cold reader). In the
newest version of each name sent, each directory with files also gets a
pack: the chunks of its small files (up to 64 KiB, stored as one chunk),
then of its larger ones, with the delta references they need, in one
object of up to 2 MiB named by the listing, so that a cold reader of the
directory makes one request where it would make one per chunk and
reference. The newest
version's tree also gets one object holding its listings (up to 2 MiB),
so that a cold walk of it (ls -lR, find) makes one request, not one per
directory. These shortcuts repeat bytes stored on their own too;
--no-packs leaves them out (a smaller layout, slower cold walks and
reads of small files).

S3 takes the SDK's standard settings: AWS_ENDPOINT_URL (an S3-compatible
server; requests are then path-style), AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1), AWS_PROFILE with
~/.aws/config and ~/.aws/credentials, and AWS_CA_BUNDLE.

--sign KEYFILE (see 'spraydryfs keygen') signs the index with ed25519;
readers given the public key with --trust then refuse any index it did not
sign, so mirrors and caches need no trust. The merged index is signed
again on every push, with a publication time later than the one it
replaces (readers refuse an older index than one they have seen). A
signing push refuses an existing index that is unsigned or signed by a key
other than KEYFILE's and the --trust keys, rather than vouch for roots
nobody trusted signed; a push without --sign refuses a signed index rather
than drop its signature. --take-over does either deliberately.`,
		Example: `  spraydryfs push /srv/www/trees
  spraydryfs push /srv/www/trees toolchain@1.2 sdk
  spraydryfs -s http://127.0.0.1:8090/ mount /mnt/trees
  AWS_ENDPOINT_URL=http://127.0.0.1:7070 spraydryfs push -j 16 s3://trees/pub
  AWS_ENDPOINT_URL=http://127.0.0.1:7070 spraydryfs -s s3://trees/pub mount /mnt/trees
  spraydryfs push --sign publish.key /srv/www/trees
  spraydryfs -s http://cache.lan/trees/ --trust publish.key.pub roots`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			refs, err := rootRefs("push", a[1:])
			if err != nil {
				return err
			}
			opt := push.Options{Workers: workers, Trust: g.trust, TakeOver: takeOver, NoPacks: noPacks}
			if sign != "" {
				if opt.Sign, err = loadSecretKey(sign); err != nil {
					return usageError{err}
				}
			}
			// DEST first: a mistake in it is found before the source is read.
			t, dest, closeTarget, err := g.openTarget(a[0], false)
			if err != nil {
				return err
			}
			if _, ok := t.(*push.StoreTarget); ok && sign != "" {
				closeTarget()
				return usageError{fmt.Errorf("push: --sign signs a layout's index; %s is a store file, which has none", dest)}
			}
			g.remote.NoCache = true // a mirror of a remote copies; it does not cache
			s, err := g.openReader()
			if err != nil {
				closeTarget()
				return err
			}
			defer s.Close()
			roots, err := namedRoots(cmd.Context(), s, refs)
			if err != nil {
				closeTarget()
				return err
			}
			return finish(transfer(cmd.Context(), "push", s, roots, t, dest, opt), closeTarget)
		},
	}
	cmd.Flags().IntVarP(&workers, "jobs", "j", 4, "objects copied in parallel (measured here: 4 beats 8 into a local directory)")
	cmd.Flags().StringVar(&sign, "sign", "", "sign the index with the secret key in `KEYFILE` (made by 'spraydryfs keygen')")
	cmd.Flags().BoolVar(&noPacks, "no-packs", false, "send no packs of directories' small files and no tree of listings (one request per small file and per directory for a cold reader)")
	cmd.Flags().BoolVar(&takeOver, "take-over", false, "replace an index that --sign (or its absence) would refuse: sign an unsigned or foreign-signed one, or unsign a signed one")
	return cmd
}

func newPullCommand(g *globals) *cobra.Command {
	var workers int
	cmd := &cobra.Command{
		Use:   "pull SRC [NAME[@VERSION]...]",
		Short: "Copy roots from a published layout or another store into this one",
		Long: `Pull copies roots (all of them, or the names and versions given) from SRC
into the store (-s). SRC is anything -s reads: a published layout at an
http(s):// URL or in a directory, or a store file. The store is a store
file, created if missing (or a layout directory, if -s names one).

A pull into a store file makes a complete offline copy: every object the
roots need, in its stored form (chunks are not dried again), verified
against its address on the way, so the copy passes check --read-data and
serves the roots without the network. Only objects the store lacks are
fetched, in parallel. The roots are added last, in one transaction, after
everything they need is committed: a pull that is interrupted or killed
adds no root, and running it again fetches only what is still missing. A
NAME@VERSION the store has with other content is refused.`,
		Example: `  spraydryfs -s local.sdfs pull http://mirror.example:8090/ toolchain@1.2
  spraydryfs -s local.sdfs pull /srv/www/trees
  spraydryfs -s local.sdfs check --read-data`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			refs, err := rootRefs("pull", a[1:])
			if err != nil {
				return err
			}
			if g.storePath == "" {
				return usageError{errors.New("pull: no store to pull into: use -s/--store PATH or set SPRAYDRYFS_STORE")}
			}
			// The copy is what is kept: filling the local cache with the
			// same objects would only evict what mounts need.
			g.remote.NoCache = true
			s, err := g.openReaderAt(a[0])
			if err != nil {
				return err
			}
			defer s.Close()
			roots, err := namedRoots(cmd.Context(), s, refs)
			if err != nil {
				return err
			}
			t, dest, closeTarget, err := g.openTarget(g.storePath, true)
			if err != nil {
				return err
			}
			if st, ok := t.(*push.StoreTarget); ok {
				st.Source = "pull " + s.where
			}
			return finish(transfer(cmd.Context(), "pull", s, roots, t, dest, push.Options{Workers: workers}), closeTarget)
		},
	}
	cmd.Flags().IntVarP(&workers, "jobs", "j", 16, "objects fetched in parallel")
	return cmd
}

// rootRefs parses the NAME[@VERSION] arguments of push and pull.
func rootRefs(cmd string, args []string) ([]store.Ref, error) {
	var refs []store.Ref
	for _, arg := range args {
		ref, err := store.ParseRef(arg, false)
		if err != nil {
			return nil, usageError{err}
		}
		if ref.Path != "" {
			return nil, usageError{fmt.Errorf("%s: roots are NAME or NAME@VERSION, without a path", cmd)}
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// finish closes a target after a transfer and returns the first error.
func finish(err error, closer func() error) error {
	if cerr := closer(); err == nil {
		err = cerr
	}
	return err
}

// namedRoots returns the roots of s that refs name (every root for none).
func namedRoots(ctx context.Context, s *readStore, refs []store.Ref) ([]store.Root, error) {
	all, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	return layout.Select(all, refs)
}

// transfer copies roots from s into t, with a progress bar on a terminal
// and a summary line.
func transfer(ctx context.Context, verb string, s *readStore, roots []store.Root, t layout.Target, dest string, opt push.Options) error {
	verbed, moved := "pushed", "sent"
	if verb == "pull" {
		verbed, moved = "pulled", "fetched"
	}
	var bar *progressbar.ProgressBar
	if term.IsTerminal(int(os.Stderr.Fd())) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(verb),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth(), progressbar.OptionSpinnerType(14))
		opt.Progress = func(r push.Report) {
			bar.Describe(fmt.Sprintf("%s: %d objects, %d %s, %d there", verb, r.Objects, r.Sent, moved, r.Present))
			bar.Set64(r.Bytes)
		}
	}
	start := time.Now()
	rep, err := push.Run(ctx, s.Objects, t, roots, opt)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s %d roots to %s in %.1fs: %d objects, %d %s (%s), %d already there\n",
		verbed, rep.Roots, dest, time.Since(start).Seconds(), rep.Objects, rep.Sent, moved, size(rep.Bytes), rep.Present)
	return nil
}
