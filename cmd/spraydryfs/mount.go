package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// openView opens the view a frontend serves (backend.OpenSpec): every root
// as /<name>/<version>/… (arg empty), one name's versions (NAME), or one
// root or a directory inside it (NAME@VERSION[/path]).
func openView(ctx context.Context, s *store.Objects, arg string) (*backend.View, error) {
	v, err := backend.OpenSpec(ctx, s, arg)
	if errors.Is(err, backend.ErrBadSpec) {
		return nil, usageError{err}
	}
	return v, err
}

// openServed prepares a long-running server: the memory limit (unless
// GOMEMLIMIT is set), the store opened read-only, and the view named by
// which (see openView). The caller closes the store.
func (g *globals) openServed(ctx context.Context, which string) (*readStore, *backend.View, error) {
	limitMemory(ctx)
	s, err := g.openReader()
	if err != nil {
		return nil, nil, err
	}
	v, err := openView(ctx, s.Objects, which)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, v, nil
}

func newMountCommand(g *globals) *cobra.Command {
	var (
		opt      mountOptions
		uid, gid int64
		extra    []string
	)
	var background bool
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT [NAME[@VERSION[/path]]]",
		Short: "Mount roots read-only with FUSE",
		Long: `Mount serves the store through the kernel with FUSE until interrupted
(Ctrl-C, SIGTERM) or unmounted (umount, umount -l, fusermount3 -u).

Without a root, the mount shows every root as /<name>/<version>/… with a
'latest' symlink per name; with NAME, that name's versions; with
NAME@VERSION (or NAME@VERSION/sub/dir), that tree alone.

The mount is read-only (ro,nosuid,nodev): every write fails with EROFS.
Ownership and permissions are the stored ones (checked by the kernel);
--uid/--gid show every file as owned by one user. As root it mounts
through /dev/fuse directly; otherwise it needs fusermount3 (Debian fuse3).
A corrupt chunk fails the reads that need it with EIO and is logged; the
rest of the tree keeps being served.

With --background it returns once the kernel has the mount (or fails with
the server's error) and keeps serving in a detached process until
unmounted; that process logs to the journal when started by systemd, else
nowhere. 'mount -t spraydryfs' and fstab use the same code through the
mount helper (see 'mount.spraydryfs --help'). In the foreground under
systemd (Type=notify), it sends READY=1 once mounted and STOPPING=1 on
SIGTERM.`,
		Example: `  spraydryfs mount /mnt/trees
  spraydryfs mount --allow-other /mnt/tc toolchain@latest
  spraydryfs mount --background /mnt/tc toolchain@1.1 && ls /mnt/tc`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if err := goBackground(ctx, background); err != nil {
				return err
			}
			which := ""
			if len(a) == 2 {
				which = a[1]
			}
			s, v, err := g.openServed(ctx, which)
			if err != nil {
				return err
			}
			defer s.Close()
			if cmd.Flags().Changed("uid") {
				u := uint32(uid)
				opt.UID = &u
			}
			if cmd.Flags().Changed("gid") {
				g := uint32(gid)
				opt.GID = &g
			}
			for _, o := range extra {
				opt.Extra = append(opt.Extra, strings.Split(o, ",")...)
			}
			m, mf, err := g.startMetrics("mount", s)
			if err != nil {
				return err
			}
			opt.Log, opt.Report = g.log, m.reporter("fuse", false)
			f, err := mountFrontend(a[0], v, opt)
			if err != nil {
				if mf != nil {
					mf.stop()
				}
				return err
			}
			f.where = "" // nothing on stdout
			if isDaemonChild() {
				f.banner = ""
			}
			return g.runFrontends(ctx, describe(which), false, withMetrics(f, mf)...)
		},
	}
	cmd.Flags().BoolVar(&opt.AllowOther, "allow-other", false, "let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	cmd.Flags().Int64Var(&uid, "uid", 0, "show every file as owned by this user id")
	cmd.Flags().Int64Var(&gid, "gid", 0, "show every file as owned by this group id")
	cmd.Flags().StringSliceVarP(&extra, "options", "o", nil, "more FUSE mount options, comma separated (the source is --fsname)")
	cmd.Flags().BoolVar(&opt.ReadDirPlus, "readdirplus", true, "send attributes with directory listings (measured: a first ls -lR 1.5x faster)")
	cmd.Flags().BoolVar(&opt.Debug, "debug", false, "log every FUSE request")
	cmd.Flags().StringVar(&opt.FsName, "fsname", "spraydryfs", "the mount's source as mount(8) and df show it (the mount helper gives the store path)")
	registerMetrics(cmd.Flags(), &g.metricsAddr)
	cmd.Flags().BoolVar(&background, "background", false, "return once mounted and keep serving in a detached process")
	return cmd
}

// mountFrontend mounts v at dir. Its run serves until unmounted from
// outside or ctx ends, which unmounts.
func mountFrontend(dir string, v *backend.View, opt mountOptions) (*frontend, error) {
	server, err := mountFUSE(dir, v, opt)
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context) error {
		done := make(chan struct{})
		go func() {
			server.Wait()
			close(done)
		}()
		select {
		case <-done: // unmounted from outside
		case <-ctx.Done():
			if err := server.Unmount(); err != nil {
				return fmt.Errorf("unmount %s: %w (is it busy? try umount -l)", dir, err)
			}
			<-done
		}
		return nil
	}
	return &frontend{name: "mount", where: dir, banner: fmt.Sprintf("at %s (Ctrl-C or 'umount %s' to stop)", dir, dir),
		run: run, stop: func() { server.Unmount() }}, nil
}

// fuseServer is a running mount (mount_unix.go, mount_windows.go).
type fuseServer interface {
	Wait()
	Unmount() error
}

func describe(which string) string {
	if which == "" {
		return "all roots"
	}
	return which
}
