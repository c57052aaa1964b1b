package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// dictSource serves one chunk dried with dictionary good, and answers a
// fetch of dictionary slow only when its caller's context ends.
type dictSource struct {
	Source
	frame      Frame
	good, slow hash.Hash
	dict       []byte
}

func (s *dictSource) Frame(context.Context, hash.Hash) (Frame, error) { return s.frame, nil }

func (s *dictSource) Dict(ctx context.Context, d hash.Hash) ([]byte, error) {
	if d == s.slow {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.dict, nil
}

// TestDictionaryLoadsWaitForNoOther: while one dictionary's fetch hangs
// (a remote that does not answer), a chunk whose dictionary is loaded
// decodes at once, and one that needs the hanging dictionary fails with
// its own caller's deadline.
func TestDictionaryLoadsWaitForNoOther(t *testing.T) {
	raw := bytes.Repeat([]byte("sprayed and dried chunks, dried again "), 50)
	var samples [][]byte
	for i := range 20 {
		samples = append(samples, fmt.Appendf(nil, "sample %d of sprayed and dried chunks, dried again and again", i))
	}
	dict, err := zstd.BuildDict(zstd.BuildDictOptions{ID: 7, Contents: samples, History: raw[:1000], Offsets: [3]int{1, 4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := chunk.NewDryer(zstd.SpeedDefault, dict)
	if err != nil {
		t.Fatal(err)
	}
	dried, codec, _ := d.Dry(nil, raw)
	src := &dictSource{good: hash.Sum(dict), slow: hash.Sum([]byte("slow")), dict: dict,
		frame: Frame{Size: len(raw), Codec: codec, Dict: hash.Sum(dict), Data: dried}}
	o, err := NewObjects(src, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b, err := o.Chunk(ctx, hash.Sum(raw)); err != nil || !bytes.Equal(b, raw) {
		t.Fatalf("chunk: %v", err)
	}
	hang, cancel := context.WithCancel(ctx)
	defer cancel()
	go o.hydrator(hang, src.slow)
	time.Sleep(20 * time.Millisecond)
	o.chunks.Purge()
	done := make(chan error, 1)
	go func() {
		b, err := o.Chunk(ctx, hash.Sum(raw))
		if err == nil && !bytes.Equal(b, raw) {
			err = errors.New("wrong bytes")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chunk while another dictionary loads: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a chunk of a loaded dictionary waited for another dictionary's load")
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if _, err := o.hydrator(short, src.slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting on the hanging dictionary: %v, want the caller's deadline", err)
	}
}
