package main

import (
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
	var workers int
	cmd := &cobra.Command{
		Use:   "push DEST [NAME[@VERSION]...]",
		Short: "Publish roots as a layout that any web server can serve",
		Long: `Push copies roots (all of them, or the names and versions given) from the
store into DEST, a directory holding the published layout: immutable
objects named by their content address under objects/<kind>/ab/cdef…, and
one small index.json naming the roots. Serve the directory with any static
web server (or S3 later) and read it anywhere with -s http://HOST/PREFIX.

Only objects DEST lacks are read and sent, in parallel; each is verified
against its address first and written atomically (temporary file and
rename). The index is merged with DEST's (pushes of different roots keep
each other's) and written last, after everything it names is on disk: a
push that is interrupted or killed publishes nothing new, and running it
again sends only what is still missing. A NAME@VERSION already published
with other content is refused.`,
		Example: `  spraydryfs push /srv/www/trees
  spraydryfs push /srv/www/trees toolchain@1.2 sdk
  spraydryfs -s http://127.0.0.1:8090/ mount /mnt/trees`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var refs []store.Ref
			for _, arg := range a[1:] {
				ref, err := store.ParseRef(arg, false)
				if err != nil {
					return usageError{err}
				}
				if ref.Path != "" {
					return usageError{errors.New("push: roots are NAME or NAME@VERSION, without a path")}
				}
				refs = append(refs, ref)
			}
			t, dest, closeTarget, err := openTarget(a[0])
			if err != nil {
				return err
			}
			defer closeTarget()
			s, err := g.openReader()
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			all, err := s.Roots(ctx)
			if err != nil {
				return err
			}
			roots, err := layout.Select(all, refs)
			if err != nil {
				return err
			}
			opt := push.Options{Workers: workers}
			var bar *progressbar.ProgressBar
			if term.IsTerminal(int(os.Stderr.Fd())) {
				bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("push"),
					progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth(), progressbar.OptionSpinnerType(14))
				opt.Progress = func(r push.Report) {
					bar.Describe(fmt.Sprintf("push: %d objects, %d sent, %d there", r.Objects, r.Sent, r.Present))
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
			fmt.Printf("pushed %d roots to %s in %.1fs: %d objects, %d sent (%s), %d already there\n",
				rep.Roots, dest, time.Since(start).Seconds(), rep.Objects, rep.Sent, size(rep.Bytes), rep.Present)
			return nil
		},
	}
	cmd.Flags().IntVarP(&workers, "jobs", "j", 4, "objects copied in parallel (measured here: 4 beats 8 into a local directory)")
	return cmd
}
