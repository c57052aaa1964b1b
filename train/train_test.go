package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

// sourceText makes n bytes of Go-like text with a shared vocabulary, the
// kind of data a dictionary helps.
func sourceText(n int, seed uint64) []byte {
	words := strings.Fields(`func return if err != nil { } package import type struct interface string int64 byte
		context.Context fmt.Errorf("%w", err) for range len append make map[string]bool switch case default
		kubernetes apiVersion metadata spec status containers image labels selector namespace`)
	r := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(8) == 0 {
			b.WriteString("\n\t")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func samples(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, sourceText(2000+i%3000, uint64(i)))
	}
	return out
}

func TestTrainIsDeterministicAndHelps(t *testing.T) {
	opt := Options{Size: 16 << 10, Level: zstd.SpeedDefault}
	a, err := Train(samples(400), opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(samples(400), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Dict, b.Dict) {
		t.Fatal("the same samples and options gave different dictionaries")
	}
	if len(a.Dict) > opt.Size {
		t.Fatalf("dictionary of %d bytes, asked for %d", len(a.Dict), opt.Size)
	}
	st := a.Stats
	if st.Samples == 0 || st.WithDict >= st.Plain*9/10 {
		t.Fatalf("dictionary does not help held-out samples: %+v", st)
	}
	// Order does not matter: the held-out split is by content.
	rev := samples(400)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if c, err := Train(rev, opt); err != nil || c.Stats.Samples != st.Samples {
		t.Fatalf("reversed samples: %v, held out %d vs %d", err, c.Stats.Samples, st.Samples)
	}
}

func TestTooLittleData(t *testing.T) {
	_, err := Train(samples(10), Options{Size: 64 << 10, Level: zstd.SpeedDefault})
	if !errors.Is(err, ErrTooLittleData) || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Train(samples(10), Options{Size: 100}); err == nil {
		t.Fatal("accepted a 100-byte dictionary")
	}
}

func TestSelectContentPrefersFrequentSegments(t *testing.T) {
	common := []byte(strings.Repeat("the common phrase everyone repeats; ", 4))
	var in [][]byte
	for i := range 200 {
		s := append(sourceText(3000, uint64(1000+i))[:1500], common...)
		in = append(in, append(s, sourceText(1500, uint64(i))...))
	}
	content := selectContent(in, 4096, 256)
	if len(content) != 4096 {
		t.Fatalf("content of %d bytes", len(content))
	}
	if !bytes.Contains(content, []byte("the common phrase everyone repeats")) {
		t.Fatal("the phrase in every sample was not selected")
	}
}

func TestCollectFromDirAndRoot(t *testing.T) {
	dir := t.TempDir()
	for i := range 60 {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%d.go", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, sourceText(20000+i*100, uint64(i)), 0o644)
	}
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := ingest.Run(ctx, s, ingest.Options{Name: "t", Version: "1", Sources: []ingest.Source{{Dir: dir}}}); err != nil {
		t.Fatal(err)
	}
	fromDir, err := Collect(ctx, s, []ingest.Source{{Dir: dir}}, 400<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromRoot, err := Collect(ctx, s, []ingest.Source{{Ref: &store.Ref{Name: "t", Version: "1"}}}, 400<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := func(ss [][]byte) (n int) {
		for _, x := range ss {
			n += len(x)
		}
		return
	}
	// Selection is by chunk hash: a directory and the root stored from it
	// give the same chunks, about as many bytes as asked for.
	if total(fromDir) != total(fromRoot) || len(fromDir) != len(fromRoot) {
		t.Fatalf("dir gave %d samples (%d bytes), root %d (%d bytes)", len(fromDir), total(fromDir), len(fromRoot), total(fromRoot))
	}
	if n := total(fromDir); n < 200<<10 || n > 700<<10 {
		t.Fatalf("asked for 400 KiB of samples, got %d bytes", n)
	}
	all, _ := Collect(ctx, s, []ingest.Source{{Dir: dir}}, 1<<30, nil)
	if total(all) <= total(fromDir) {
		t.Fatal("a larger budget did not take more samples")
	}
}
