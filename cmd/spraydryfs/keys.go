package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// maxKeyFile bounds a key file read: a key is one short line.
const maxKeyFile = 4 << 10

func newKeygenCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen KEYFILE",
		Short: "Make a key pair that signs published roots indexes",
		Long: `Keygen makes an ed25519 key pair for signing the roots index of a
published layout ('push --sign KEYFILE', 'serve http --sign KEYFILE'). It
writes the secret key to KEYFILE (mode 0600: keep it on the publisher and
nowhere else) and the public key to KEYFILE.pub, and prints the public key.
Readers given it with --trust (the .pub file or the printed line) refuse
an index that is unsigned or signed by any other key; as every object is
named by its hash, that authenticates every byte they read, whatever
mirrors and caches are in between.

Both files are one line of text: 'spraydryfs-ed25519-secret <base64>' and
'spraydryfs-ed25519-public <base64>'. An existing file is not overwritten
unless --force is given.`,
		Example: `  spraydryfs keygen ~/.config/spraydryfs/publish.key
  spraydryfs -s trees.sdfs push --sign ~/.config/spraydryfs/publish.key /srv/www/trees
  spraydryfs -s http://cache.lan/trees/ --trust publish.key.pub mount /mnt/trees`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := a[0]
			key, err := layout.GenerateKey()
			if err != nil {
				return err
			}
			pub := layout.FormatPublicKey(key.Public().(ed25519.PublicKey))
			if !force {
				for _, p := range []string{path, path + ".pub"} {
					if _, err := os.Lstat(p); err == nil {
						return fmt.Errorf("keygen: %s exists; not overwriting it (--force replaces it, and the key readers trust)", p)
					}
				}
			}
			if err := writeKeyFile(path, layout.FormatSecretKey(key), 0o600, force); err != nil {
				return err
			}
			if err := writeKeyFile(path+".pub", pub+"\n", 0o644, force); err != nil {
				return err
			}
			fmt.Println(pub)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite KEYFILE and KEYFILE.pub if they exist")
	return cmd
}

// writeKeyFile writes text to path with mode perm: a new file unless
// force, in which case a temporary file replaces path.
func writeKeyFile(path, text string, perm os.FileMode, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("keygen: write %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".keygen-*")
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	return nil
}

// readKeyFile reads a key file: one short line of text.
func readKeyFile(path string) (string, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", nil, err
	}
	if len(b) > maxKeyFile {
		return "", nil, fmt.Errorf("%s: more than %d bytes, not a key file", path, maxKeyFile)
	}
	return string(b), st, nil
}

// loadSecretKey reads the secret key file that --sign names, which only
// its owner may read (as ssh demands of its keys).
func loadSecretKey(path string) (ed25519.PrivateKey, error) {
	text, st, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--sign: %w", err)
	}
	key, err := layout.ParseSecretKey(text)
	if err != nil {
		return nil, fmt.Errorf("--sign %s: %w", path, err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--sign %s: the secret key is readable by others (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return key, nil
}

// parseTrust reads a --trust value: a public key line
// ('spraydryfs-ed25519-public <base64>') or a file holding one.
func parseTrust(arg string) (ed25519.PublicKey, error) {
	if strings.HasPrefix(arg, layout.PublicKeyPrefix) {
		k, err := layout.ParsePublicKey(arg)
		if err != nil {
			return nil, fmt.Errorf("--trust %q: %w", arg, err)
		}
		return k, nil
	}
	text, _, err := readKeyFile(arg)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--trust %s: no such file (give a KEYFILE.pub or the line %q)", arg, layout.PublicKeyPrefix+"…")
	}
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	k, err := layout.ParsePublicKey(text)
	if err != nil {
		return nil, fmt.Errorf("--trust %s: %w", arg, err)
	}
	return k, nil
}

// loadTrust parses the --trust values into g.trust.
func (g *globals) loadTrust() error {
	g.trust = nil
	for _, a := range g.trustArgs {
		if a == "" {
			continue
		}
		k, err := parseTrust(a)
		if err != nil {
			return usageError{err}
		}
		g.trust = append(g.trust, k)
	}
	return nil
}

// trustFromEnv splits $SPRAYDRYFS_TRUST, a list of --trust values
// separated as in PATH.
func trustFromEnv() []string {
	v := os.Getenv("SPRAYDRYFS_TRUST")
	if v == "" {
		return nil
	}
	return filepath.SplitList(v)
}
