// Command dictcmp compares SprayDryFS's dictionary trainer with zstd --train
// on the same samples: training time, and the held-out samples' compressed
// size through the same klauspost/compress encoder. Used by bench/dict.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/train"
)

func main() {
	src := flag.String("src", "", "directory to sample")
	work := flag.String("work", os.TempDir(), "scratch directory")
	flag.Parse()
	if err := run(*src, *work); err != nil {
		fmt.Fprintln(os.Stderr, "dictcmp:", err)
		os.Exit(1)
	}
}

func run(src, work string) error {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(work, "dictcmp.sdfs"), store.Options{Create: true})
	if err != nil {
		return err
	}
	defer s.Close()
	samples, err := train.Collect(ctx, s, []ingest.Source{{Dir: src}}, train.DefaultSampleBytes, nil)
	if err != nil {
		return err
	}
	// The same split Train makes: every tenth sample by content is held out.
	dir := filepath.Join(work, "samples")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	var held [][]byte
	var trainBytes int
	for i, b := range samples {
		if h := hash.Sum(b); h[1]%10 == 0 {
			held = append(held, b)
			continue
		}
		trainBytes += len(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%06d", i)), b, 0o644); err != nil {
			return err
		}
	}
	start := time.Now()
	ours, err := train.Train(samples, train.Options{Size: train.DefaultSize, Level: zstd.SpeedDefault})
	if err != nil {
		return err
	}
	oursTime := time.Since(start)

	theirsFile := filepath.Join(work, "zstd.dict")
	start = time.Now()
	out, err := exec.Command("sh", "-c", fmt.Sprintf("zstd -q -f --train -o %s --maxdict=%d %s/*", theirsFile, train.DefaultSize, dir)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("zstd --train: %v: %s", err, out)
	}
	theirsTime := time.Since(start)
	theirs, err := os.ReadFile(theirsFile)
	if err != nil {
		return err
	}
	size := func(dict []byte) (int64, int64, error) {
		plain, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false))
		with, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false), zstd.WithEncoderDict(dict))
		if err != nil {
			return 0, 0, err
		}
		var p, w int64
		for _, b := range held {
			p += int64(len(plain.EncodeAll(b, nil)))
			w += int64(len(with.EncodeAll(b, nil)))
		}
		return p, w, nil
	}
	plain, oursSize, err := size(ours.Dict)
	if err != nil {
		return err
	}
	_, theirsSize, err := size(theirs)
	if err != nil {
		return err
	}
	var raw int64
	for _, b := range held {
		raw += int64(len(b))
	}
	fmt.Printf("samples: %d (%.1f MB) for training, %d held out (%.2f MB raw, %.3f MB with zstd alone)\n",
		len(samples)-len(held), float64(trainBytes)/1e6, len(held), float64(raw)/1e6, float64(plain)/1e6)
	fmt.Printf("%-22s %10s %14s %12s\n", "trainer", "time s", "held-out MB", "dict bytes")
	fmt.Printf("%-22s %10.2f %14.3f %12d\n", "spraydryfs train", oursTime.Seconds(), float64(oursSize)/1e6, len(ours.Dict))
	fmt.Printf("%-22s %10.2f %14.3f %12d\n", "zstd --train", theirsTime.Seconds(), float64(theirsSize)/1e6, len(theirs))
	ratio := float64(oursSize) / float64(theirsSize)
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("ours/theirs held-out size %.4f (target <= 1.03: %s); time %.2fx (target <= 1: %s)\n",
		ratio, met(ratio <= 1.03), oursTime.Seconds()/theirsTime.Seconds(), met(oursTime <= theirsTime))
	return nil
}
