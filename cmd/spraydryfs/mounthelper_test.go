package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend/layout"
)

// TestMountHelperArgs checks the mount(8) helper command line: mount(8)'s
// argument form, the options it must understand, those it must ignore and
// those it must refuse, and the spraydryfs command line it turns into.
func TestMountHelperArgs(t *testing.T) {
	for _, name := range []string{"mount.spraydryfs", "/sbin/mount.spraydryfs", "/usr/sbin/mount.spraydryfs"} {
		if !isMountHelper(name) {
			t.Errorf("isMountHelper(%q) = false", name)
		}
	}
	if isMountHelper("/usr/local/bin/spraydryfs") {
		t.Error("spraydryfs taken for the mount helper")
	}

	key, _ := layout.GenerateKey()
	pubFile := filepath.Join(t.TempDir(), "k.pub")
	os.WriteFile(pubFile, []byte(layout.FormatPublicKey(key.Public().(ed25519.PublicKey))+"\n"), 0o644)
	secFile := filepath.Join(t.TempDir(), "k")
	os.WriteFile(secFile, []byte(layout.FormatSecretKey(key)), 0o600)
	c, err := parseHelperArgs([]string{"/srv/t.sdfs", "/mnt/tc", "-v", "-o",
		"rw,root=toolchain@latest/bin,allow_other,uid=1000,gid=0,cache-dir=/var/cache/sdfs,cache-size=2GiB,debug," +
			"nofail,_netdev,noatime,relatime,nosuid,nodev,noexec,user,users,defaults,x-systemd.automount,x-gvfs-show,comment=x,trust=" + pubFile})
	if err != nil {
		t.Fatal(err)
	}
	if c.store != "/srv/t.sdfs" || c.dir != "/mnt/tc" || c.root != "toolchain@latest/bin" || !c.allowOther || !c.debug || !c.verbose ||
		c.uid != "1000" || c.gid != "0" || c.remote != (remoteOptions{CacheDir: "/var/cache/sdfs", CacheSize: 2 << 30}) {
		t.Errorf("parsed %+v", c)
	}
	if len(c.warnings) != 1 || !strings.Contains(c.warnings[0], "read-only") {
		t.Errorf("rw should warn once that the mount is read-only: %q", c.warnings)
	}
	want := []string{"--store=/srv/t.sdfs", "--verbose", "--trust=" + pubFile, "--cache-dir=/var/cache/sdfs", "--cache-size=2147483648", "mount", "--background", "--fsname=/srv/t.sdfs",
		"--allow-other", "--uid=1000", "--gid=0", "--debug", "--", "/mnt/tc", "toolchain@latest/bin"}
	if got := c.mountArgs(); !reflect.DeepEqual(got, want) {
		t.Errorf("mountArgs:\n got %q\nwant %q", got, want)
	}

	// Flags clustered, -oOPTS, several -o, and no root: every root.
	c, err = parseHelperArgs([]string{"-sfn", "-oro", "s", "-t", "spraydryfs", "d", "-o", "bogus"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.sloppy || !c.fake || c.root != "" || len(c.warnings) != 1 || !strings.Contains(c.warnings[0], `"bogus"`) {
		t.Errorf("parsed %+v", c)
	}
	if got := c.mountArgs(); got[len(got)-1] != "d" {
		t.Errorf("no root should mount every root: %q", got)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"s", "d", "-o", "root=a@1,bogus"}, `unknown mount option "bogus"`},
		{[]string{"s", "d", "-o", "rw,exec=1"}, `unknown mount option "exec=1"`},
		{[]string{"s", "d", "-o", "root="}, "root needs a value"},
		{[]string{"s", "d", "-o", "root=../x"}, "root=../x"},
		{[]string{"s", "d", "-o", "allow_other=yes"}, "allow_other takes no value"},
		{[]string{"s", "d", "-o", "cache-size=lots"}, "cache-size"},
		{[]string{"s", "d", "-o", "uid=no-such-user-here"}, "uid=no-such-user-here"},
		{[]string{"s", "d", "-o"}, "-o needs a value"},
		{[]string{"s", "d", "-o", "trust="}, "trust needs a value"},
		{[]string{"s", "d", "-o", "trust=/no/such/key.pub"}, "no such file"},
		{[]string{"s", "d", "-o", "trust=" + secFile}, "is a secret key"},
		{[]string{"s", "d", "-x"}, "unknown flag -x"},
		{[]string{"s", "d", "-N", "/proc/1/ns/mnt"}, "namespace"},
		{[]string{"s"}, "want STORE MOUNTPOINT"},
		{[]string{"s", "d", "e"}, "want STORE MOUNTPOINT"},
	} {
		_, err := parseHelperArgs(bad.args)
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v, want one line with %q", bad.args, err, bad.want)
		}
	}
}
