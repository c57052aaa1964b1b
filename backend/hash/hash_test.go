package hash

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestSumMatchesSHA256(t *testing.T) {
	h := Sum([]byte("abc"))
	want := sha256.Sum256([]byte("abc"))
	if got := h.String(); got != "sha256:"+hex.EncodeToString(want[:]) {
		t.Fatalf("String = %s", got)
	}
	p, err := Parse(h.String())
	if err != nil || p != h {
		t.Fatalf("Parse round trip: %v %v", p, err)
	}
	if _, err := FromBytes(h[:]); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "sha256:zz", "md5:" + hex.EncodeToString(want[:]), "sha256:" + hex.EncodeToString(want[:4])} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := FromBytes(h[:5]); err == nil {
		t.Error("FromBytes accepted a short hash")
	}
}

func benchmarkSum(b *testing.B, n int) {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(i * 7)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		Sum(d)
	}
}

func BenchmarkSum4K(b *testing.B)  { benchmarkSum(b, 4<<10) }
func BenchmarkSum64K(b *testing.B) { benchmarkSum(b, 64<<10) }
