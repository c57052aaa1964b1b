package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func cut(t testing.TB, data []byte) [][]byte {
	c, err := NewChunker(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	c.Reset(bytes.NewReader(data))
	var out [][]byte
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte{}, b...))
	}
}

func TestChunkerBoundsAndResync(t *testing.T) {
	p := DefaultParams()
	data := randomBytes(4<<20, 1)
	chunks := cut(t, data)
	if !bytes.Equal(bytes.Join(chunks, nil), data) {
		t.Fatal("chunks do not reassemble the input")
	}
	for i, c := range chunks {
		if len(c) > p.Max || (len(c) < p.Min && i != len(chunks)-1) {
			t.Fatalf("chunk %d has %d bytes", i, len(c))
		}
	}
	if n := len(chunks); n < 30 || n > 130 {
		t.Fatalf("%d chunks for 4 MiB at a 64 KiB average", n)
	}
	// One changed byte near the start changes only the chunks around it.
	mod := append([]byte{}, data...)
	mod[100000] ^= 0xff
	seen := map[hash.Hash]bool{}
	for _, c := range chunks {
		seen[hash.Sum(c)] = true
	}
	changed := 0
	for _, c := range cut(t, mod) {
		if !seen[hash.Sum(c)] {
			changed++
		}
	}
	if changed == 0 || changed > 2 {
		t.Fatalf("%d chunks changed after one byte", changed)
	}
	if len(cut(t, nil)) != 0 {
		t.Fatal("empty input gave chunks")
	}
}

func TestParams(t *testing.T) {
	p, err := ParseParams(DefaultParams().String())
	if err != nil || p != DefaultParams() {
		t.Fatalf("%v %v", p, err)
	}
	if _, err := ParseParams(`{"algorithm":"nope","min":1,"avg":2,"max":3}`); err == nil {
		t.Fatal("accepted an unknown algorithm")
	}
}

func TestDryHydrate(t *testing.T) {
	d, err := NewDryer(zstd.SpeedDefault, nil)
	if err != nil {
		t.Fatal(err)
	}
	y, err := NewHydrator(nil)
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("spray dry rehydrate "), 1000)
	noise := randomBytes(10000, 2)
	for _, tc := range []struct {
		data  []byte
		codec Codec
	}{{text, Zstd}, {noise, Raw}} {
		stored, codec, _ := d.Dry([]byte("prefix"), tc.data)
		if codec != tc.codec {
			t.Fatalf("codec %d, want %d", codec, tc.codec)
		}
		stored = stored[len("prefix"):]
		h := hash.Sum(tc.data)
		got, err := y.Hydrate(h, codec, len(tc.data), stored)
		if err != nil || !bytes.Equal(got, tc.data) {
			t.Fatalf("hydrate: %v", err)
		}
		bad := append([]byte{}, stored...)
		bad[len(bad)/2] ^= 0x40
		if got, err := y.Hydrate(h, codec, len(tc.data), bad); !errors.Is(err, ErrCorrupt) || got != nil {
			t.Fatalf("flipped byte: err %v, %d bytes returned", err, len(got))
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	data := randomBytes(16<<20, 3)
	c, _ := NewChunker(DefaultParams())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.Reset(bytes.NewReader(data))
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

func sourceLike(n int) []byte {
	words := []string{"func ", "return ", "err ", "if ", "nil", " {\n", "}\n", "\t", "context", "kube", "api", ".", "(", ")", "string", "int64 "}
	r := rand.New(rand.NewPCG(4, 4))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func BenchmarkDry(b *testing.B) {
	d, _ := NewDryer(zstd.SpeedDefault, nil)
	data := sourceLike(64 << 10)
	buf := make([]byte, 0, 128<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		d.Dry(buf[:0], data)
	}
}

func BenchmarkHydrate(b *testing.B) {
	d, _ := NewDryer(zstd.SpeedDefault, nil)
	y, _ := NewHydrator(nil)
	data := sourceLike(64 << 10)
	stored, codec, _ := d.Dry(nil, data)
	h := hash.Sum(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := y.Hydrate(h, codec, len(data), stored); err != nil {
			b.Fatal(err)
		}
	}
}
