package chunk

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// edited returns a copy of ref with a few small edits, as a new version of
// a source file would have.
func edited(ref []byte) []byte {
	out := append([]byte{}, ref[:len(ref)/3]...)
	out = append(out, "// a line added in the new version\n"...)
	out = append(out, ref[len(ref)/3:2*len(ref)/3]...)
	return append(out, ref[2*len(ref)/3+100:]...)
}

func TestDeltaRoundTrip(t *testing.T) {
	d := NewDeltaDryer(zstd.SpeedDefault)
	plain, _ := NewDryer(zstd.SpeedDefault, nil)
	var wg sync.WaitGroup
	for i := range 8 { // concurrent calls share the pools
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := sourceLike(48<<10 + i*1000)
			raw := edited(ref)
			stored, err := d.Dry([]byte("x"), raw, ref)
			if err != nil {
				t.Error(err)
				return
			}
			stored = stored[1:]
			if p, _, _ := plain.Dry(nil, raw); len(stored)*10 > len(p) {
				t.Errorf("delta %d bytes, plain %d: the reference was not used", len(stored), len(p))
			}
			h := hash.Sum(raw)
			got, err := HydrateDelta(h, len(raw), stored, ref)
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("hydrate: %v", err)
				return
			}
			// A wrong reference gives a corruption error, never other bytes.
			wrong := append([]byte{}, ref...)
			wrong[len(wrong)/2] ^= 1
			if got, err := HydrateDelta(h, len(raw), stored, wrong); !errors.Is(err, ErrCorrupt) || got != nil {
				t.Errorf("wrong reference: %v, %d bytes", err, len(got))
			}
			bad := append([]byte{}, stored...)
			bad[len(bad)/2] ^= 0x10
			if got, err := HydrateDelta(h, len(raw), bad, ref); !errors.Is(err, ErrCorrupt) || got != nil {
				t.Errorf("flipped byte: %v, %d bytes", err, len(got))
			}
		}()
	}
	wg.Wait()
	y, _ := NewHydrator(nil)
	if _, err := y.Hydrate(hash.Sum(nil), Delta, 0, nil); err == nil {
		t.Fatal("Hydrate decoded a delta chunk without its reference")
	}
}

func BenchmarkDeltaDry(b *testing.B) {
	d := NewDeltaDryer(zstd.SpeedDefault)
	ref := sourceLike(64 << 10)
	raw := edited(ref)
	buf := make([]byte, 0, 128<<10)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := d.Dry(buf[:0], raw, ref); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeltaHydrate(b *testing.B) {
	d := NewDeltaDryer(zstd.SpeedDefault)
	ref := sourceLike(64 << 10)
	raw := edited(ref)
	stored, _ := d.Dry(nil, raw, ref)
	h := hash.Sum(raw)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := HydrateDelta(h, len(raw), stored, ref); err != nil {
			b.Fatal(err)
		}
	}
}
