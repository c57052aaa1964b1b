package tree

import "testing"

// TestDevEncoding checks that Mkdev, Major and Minor round-trip and agree
// with Linux's makedev(3).
func TestDevEncoding(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{
		{0, 0}, {1, 3}, {8, 17}, {259, 65536}, {4095, 255}, {4096, 256}, {1<<32 - 1, 1<<32 - 1},
	} {
		r := Mkdev(c.major, c.minor)
		if Major(r) != c.major || Minor(r) != c.minor {
			t.Errorf("Mkdev(%d, %d) = %#x decodes to %d:%d", c.major, c.minor, r, Major(r), Minor(r))
		}
	}
	for _, c := range []struct {
		major, minor uint32
		want         uint64
	}{{8, 1, 0x801}, {259, 65536, 0x10010300}, {4096, 0, 0x100000000000}} {
		if got := Mkdev(c.major, c.minor); got != c.want {
			t.Errorf("Mkdev(%d, %d) = %#x, want %#x", c.major, c.minor, got, c.want)
		}
	}
}
