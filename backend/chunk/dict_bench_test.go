package chunk_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/train"
)

// smallChunks are source-like chunks of 1-8 KiB, where dictionaries matter.
func smallChunks() [][]byte {
	words := strings.Fields(`func return if err != nil { } package import type struct interface string int64 byte
		context.Context fmt.Errorf("%w", err) for range len append make map[string]bool switch case default
		kubernetes apiVersion metadata spec status containers image labels selector namespace`)
	r := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for range 2000 {
		var b bytes.Buffer
		n := 1024 + r.IntN(7*1024)
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" \n\t"[r.IntN(3)])
		}
		out = append(out, b.Bytes()[:n])
	}
	return out
}

// BenchmarkHydrateSmall reads small chunks dried without and with a
// trained dictionary (MB/s of content).
func BenchmarkHydrateSmall(b *testing.B) {
	chunks := smallChunks()
	res, err := train.Train(chunks, train.Options{Size: 32 << 10, Level: zstd.SpeedDefault})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dict []byte
	}{{"Plain", nil}, {"Dict", res.Dict}} {
		b.Run(c.name, func(b *testing.B) {
			d, _ := chunk.NewDryer(zstd.SpeedDefault, c.dict)
			y, _ := chunk.NewHydrator(c.dict)
			type stored struct {
				h     hash.Hash
				codec chunk.Codec
				data  []byte
				size  int
			}
			var all []stored
			var raw, dried int64
			for _, ch := range chunks {
				out, codec, _ := d.Dry(nil, ch)
				all = append(all, stored{hash.Sum(ch), codec, out, len(ch)})
				raw += int64(len(ch))
				dried += int64(len(out))
			}
			b.ReportMetric(float64(dried)/float64(raw), "stored/raw")
			b.SetBytes(raw)
			for b.Loop() {
				for _, s := range all {
					if _, err := y.Hydrate(s.h, s.codec, s.size, s.data); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
