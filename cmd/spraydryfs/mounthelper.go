package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// helperName is the name mount(8) runs for file systems of type
// spraydryfs: /sbin/mount.spraydryfs, a link to this binary.
const helperName = "mount.spraydryfs"

// Exit codes of a mount helper, as mount(8) documents them.
const (
	exitIncorrect = 1  // incorrect invocation or permissions
	exitMountFail = 32 // mount failure
)

const helperHelp = `Usage: mount.spraydryfs STORE MOUNTPOINT [-o OPTIONS] [-s] [-f] [-n] [-v]

The mount helper mount(8) runs for 'mount -t spraydryfs' and for fstab
lines of type spraydryfs (/sbin/mount.spraydryfs is a link to spraydryfs).
It mounts STORE read-only with FUSE at MOUNTPOINT, returns once the kernel
has the mount, and keeps serving in the background until 'umount
MOUNTPOINT'. Its log goes to the journal when started by systemd, else
nowhere (run 'spraydryfs mount' in the foreground to see it).

Options (-o, comma separated):
  root=NAME[@VERSION[/path]]  what to mount: one name's versions, one root
                              or a directory in it (default: every root as
                              /<name>/<version>/…)
  allow_other                 let other users see the mount
  uid=ID, gid=ID              show every file as owned by this user/group
                              (number or name)
  cache-dir=DIR, cache-size=SIZE
                              local cache of a remote store (e.g. 2GiB);
                              ignored for a store file
  trust=FILE                  the index of a published layout must be
                              signed by the public key in FILE (made by
                              'spraydryfs keygen'; repeatable: any of them)
  debug                       log every FUSE request
Ignored: ro, rw (the mount is always read-only; rw warns), defaults, auto,
noauto, nofail, _netdev, user, users, nouser, owner, group, exec, noexec,
suid, nosuid, dev, nodev, sync, async, atime, noatime, relatime,
strictatime, diratime, nodiratime, lazytime, nolazytime, comment=, x-*.
Any other option is an error (with -s, a warning).

  -s  sloppy: warn about unknown options instead of failing
  -f  fake: check the options, mount nothing
  -n  no mtab (there is none to write: accepted)
  -v  verbose: log debug messages

Exit codes (mount(8)): 0 mounted, 1 incorrect invocation, 32 mount failure.

Example fstab lines:
  /srv/trees.sdfs /mnt/tc spraydryfs ro,root=toolchain@latest,allow_other,nofail 0 0
  http://cache.lan/trees/ /mnt/trees spraydryfs ro,trust=/etc/spraydryfs/publish.pub,_netdev,nofail 0 0
`

// errHelperHelp asks for the help text.
var errHelperHelp = errors.New("help")

// isMountHelper reports whether the binary was started under the mount
// helper's name.
func isMountHelper(argv0 string) bool { return filepath.Base(argv0) == helperName }

// remoteOptions tune reading a remote store: where and how much of it to
// cache locally. A store file ignores them.
type remoteOptions struct {
	CacheDir  string
	CacheSize int64 // bytes; 0: the default
	NoCache   bool
}

// helperCall is one parsed mount.spraydryfs command line.
type helperCall struct {
	store, dir string
	root       string // NAME[@VERSION[/path]], "" for every root
	allowOther bool
	debug      bool
	uid, gid   string // decimal ids, "" when not set
	remote     remoteOptions
	trust      []string // absolute paths of public key files
	fake       bool
	sloppy     bool
	verbose    bool
	warnings   []string
}

// ignoredOptions are options mount(8) or fstab may pass that mean nothing
// for a read-only FUSE mount (rw is handled apart: it warns).
var ignoredOptions = map[string]bool{
	"ro": true, "defaults": true, "auto": true, "noauto": true, "nofail": true, "_netdev": true,
	"user": true, "users": true, "nouser": true, "owner": true, "group": true,
	"exec": true, "noexec": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"sync": true, "async": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "diratime": true, "nodiratime": true,
	"lazytime": true, "nolazytime": true,
}

// parseHelperArgs reads mount(8)'s helper command line:
// STORE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE], flags anywhere.
func parseHelperArgs(args []string) (*helperCall, error) {
	c := &helperCall{}
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			return nil, errHelperHelp
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				switch f := a[j]; f {
				case 's':
					c.sloppy = true
				case 'f':
					c.fake = true
				case 'n':
				case 'v':
					c.verbose = true
				case 'o', 't', 'N':
					val := a[j+1:]
					if val == "" {
						if i+1 >= len(args) {
							return nil, fmt.Errorf("option -%c needs a value (see %s --help)", f, helperName)
						}
						i++
						val = args[i]
					}
					switch f {
					case 'o':
						opts = append(opts, val)
					case 'N':
						return nil, fmt.Errorf("-N %s: mounting in another namespace is not supported", val)
					}
					j = len(a)
				default:
					return nil, fmt.Errorf("unknown flag -%c (see %s --help)", f, helperName)
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("want STORE MOUNTPOINT, got %d arguments (see %s --help)", len(pos), helperName)
	}
	c.store, c.dir = pos[0], pos[1]
	for _, o := range opts {
		if err := c.option(o); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// option applies one -o argument (comma-separated options).
func (c *helperCall) option(list string) error {
	for _, o := range strings.Split(list, ",") {
		if o == "" {
			continue
		}
		key, val, hasVal := strings.Cut(o, "=")
		needVal := func() error {
			if !hasVal || val == "" {
				return fmt.Errorf("mount option %s needs a value (%s=...)", key, key)
			}
			return nil
		}
		noVal := func() error {
			if hasVal {
				return fmt.Errorf("mount option %s takes no value", key)
			}
			return nil
		}
		var err error
		switch {
		case key == "root":
			if err = needVal(); err == nil {
				if _, perr := store.ParseRef(val, false); perr != nil {
					err = fmt.Errorf("mount option root=%s: %w", val, perr)
				}
				c.root = val
			}
		case key == "allow_other":
			err = noVal()
			c.allowOther = true
		case key == "debug":
			err = noVal()
			c.debug = true
		case key == "uid":
			if err = needVal(); err == nil {
				c.uid, err = lookupID(key, val)
			}
		case key == "gid":
			if err = needVal(); err == nil {
				c.gid, err = lookupID(key, val)
			}
		case key == "cache-dir":
			err = needVal()
			c.remote.CacheDir = val
		case key == "cache-size":
			if err = needVal(); err == nil {
				if c.remote.CacheSize, err = parseSize(val); err != nil {
					err = fmt.Errorf("mount option cache-size: %w", err)
				}
			}
		case key == "trust":
			if err = needVal(); err == nil {
				err = c.addTrust(val)
			}
		case key == "rw":
			c.warnings = append(c.warnings, "option rw ignored: the mount is always read-only (write ro to silence this)")
		case ignoredOptions[key] && !hasVal, key == "comment", key == "user", strings.HasPrefix(key, "x-"):
		case c.sloppy:
			c.warnings = append(c.warnings, fmt.Sprintf("unknown mount option %q ignored (-s)", o))
		default:
			return fmt.Errorf("unknown mount option %q (see %s --help)", o, helperName)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addTrust checks that file holds a public key and adds it to the keys
// the mount trusts, as an absolute path (the mount runs elsewhere).
func (c *helperCall) addTrust(file string) error {
	if strings.HasPrefix(file, layout.PublicKeyPrefix) {
		return fmt.Errorf("mount option trust=%s: give a file holding the public key (e.g. KEYFILE.pub)", file)
	}
	if _, err := parseTrust(file); err != nil {
		return fmt.Errorf("mount option trust=%s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("mount option trust=%s: %w", file, err)
	}
	c.trust = append(c.trust, abs)
	return nil
}

// lookupID reads a uid= or gid= value: a number, or a user or group name.
func lookupID(key, val string) (string, error) {
	if _, err := strconv.ParseUint(val, 10, 32); err == nil {
		return val, nil
	}
	if key == "uid" {
		u, err := user.Lookup(val)
		if err != nil {
			return "", fmt.Errorf("mount option uid=%s: %w", val, err)
		}
		return u.Uid, nil
	}
	g, err := user.LookupGroup(val)
	if err != nil {
		return "", fmt.Errorf("mount option gid=%s: %w", val, err)
	}
	return g.Gid, nil
}

// mountArgs is the spraydryfs command line that does what c asks:
// mount --background with the same options.
func (c *helperCall) mountArgs() []string {
	a := []string{"--store=" + c.store}
	if c.verbose {
		a = append(a, "--verbose")
	}
	for _, t := range c.trust {
		a = append(a, "--trust="+t)
	}
	if c.remote.CacheDir != "" {
		a = append(a, "--cache-dir="+c.remote.CacheDir)
	}
	if c.remote.CacheSize > 0 {
		a = append(a, "--cache-size="+strconv.FormatInt(c.remote.CacheSize, 10))
	}
	// The store as the source lets mount -a see the line is mounted.
	source := c.store
	if abs, err := filepath.Abs(source); err == nil && !strings.Contains(source, "://") {
		source = abs
	}
	a = append(a, "mount", "--background", "--fsname="+source)
	if c.allowOther {
		a = append(a, "--allow-other")
	}
	if c.uid != "" {
		a = append(a, "--uid="+c.uid)
	}
	if c.gid != "" {
		a = append(a, "--gid="+c.gid)
	}
	if c.debug {
		a = append(a, "--debug")
	}
	a = append(a, "--", c.dir)
	if c.root != "" {
		a = append(a, c.root)
	}
	return a
}

// runMountHelper is main for mount.spraydryfs; it returns the exit code.
func runMountHelper(args []string) int {
	c, err := parseHelperArgs(args)
	if errors.Is(err, errHelperHelp) {
		fmt.Print(helperHelp)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		return exitIncorrect
	}
	if !isDaemonChild() { // the parent has shown them
		for _, w := range c.warnings {
			fmt.Fprintf(os.Stderr, "%s: warning: %s\n", helperName, w)
		}
	}
	if c.fake {
		return 0
	}
	g := &globals{}
	root := newRootCommand(g)
	root.SetArgs(c.mountArgs())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		var ue usageError
		if errors.As(err, &ue) {
			return exitIncorrect
		}
		return exitMountFail
	}
	return 0
}
