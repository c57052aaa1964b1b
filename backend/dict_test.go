package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/walk"
	"github.com/spraydryfs/spraydryfs/ingest"
	"github.com/spraydryfs/spraydryfs/train"
)

// prose makes small files from a vocabulary, different per kind.
func prose(kind string, n int, seed uint64) []byte {
	words := strings.Fields(kind)
	r := rand.New(rand.NewPCG(seed, 3))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

const (
	goWords   = "func return err nil package import struct interface context string int64 byte range append"
	yamlWords = "apiVersion: kind: metadata: name: spec: containers: image: labels: selector: replicas: ports:"
)

func kindTree(t *testing.T, kind string, n int, seed uint64) (string, map[string][]byte) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for i := range n {
		files[fmt.Sprintf("f%03d.txt", i)] = prose(kind, 1500+i*37%2000, seed+uint64(i))
	}
	writeTree(t, dir, files, nil)
	return dir, files
}

func trainDict(t *testing.T, s *store.Store, name, dir string) *store.Dict {
	ctx := context.Background()
	samples, err := train.Collect(ctx, s, []ingest.Source{{Dir: dir}}, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := train.Train(samples, train.Options{Size: 8 << 10, Level: zstd.SpeedDefault})
	if err != nil {
		t.Fatal(err)
	}
	d := store.Dict{Name: name, Version: "1", Params: "{}", Stats: "{}", Hash: hash.Sum(res.Dict), Data: res.Dict, Created: time.Now()}
	if d.ID, err = s.AddDict(ctx, d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestSeveralDictionariesRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.sdfs")
	s, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	goDir, goFiles := kindTree(t, goWords, 150, 1)
	yamlDir, _ := kindTree(t, yamlWords, 150, 2)
	dGo, dYaml := trainDict(t, s, "go", goDir), trainDict(t, s, "yaml", yamlDir)
	if _, err := s.AddDict(ctx, *dGo); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate dictionary name: %v", err)
	}

	goNew, goNewFiles := kindTree(t, goWords, 40, 100)
	yamlNew, yamlNewFiles := kindTree(t, yamlWords, 40, 200)
	for _, x := range []struct {
		id, dir string
		dict    *store.Dict
	}{{"plain@1", goDir, nil}, {"go@1", goNew, dGo}, {"yaml@1", yamlNew, dYaml}} {
		ref, _ := store.ParseRef(x.id, true)
		if _, err := ingest.Run(ctx, s, ingest.Options{Name: ref.Name, Version: ref.Version, Sources: []ingest.Source{{Dir: x.dir}}, Dict: x.dict}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*store.Dict{dGo, dYaml} {
		if n, err := s.DictUsers(ctx, d.ID); err != nil || n == 0 {
			t.Fatalf("dictionary %s used by %d chunks, %v", d.Ref(), n, err)
		}
	}
	s.Close()

	// A fresh open decodes every kind of chunk.
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, files := range map[string]map[string][]byte{"plain@1": goFiles, "go@1": goNewFiles, "yaml@1": yamlNewFiles} {
		fsys := openRoot(t, s, id).FS()
		for p, want := range files {
			if got, err := fsys.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s/%s: %v", id, p, err)
			}
		}
	}
	if rep, err := s.Check(ctx, true, nil); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}

	// A used dictionary stays; an unused one goes.
	if err := s.RemoveDict(ctx, *dGo); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("removing a used dictionary: %v", err)
	}
	unused := trainDict(t, s, "unused", goDir)
	if err := s.SetDefaultDict(ctx, unused.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDict(ctx, *unused); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DefaultDict(ctx); err != nil || d != nil {
		t.Fatalf("default after removing it: %v %v", d, err)
	}

	// Recompressing the plain root with a dictionary keeps every byte.
	r, _ := s.Root(ctx, "plain", "1")
	st, err := s.Recompress(ctx, dGo, zstd.SpeedDefault, rootChunks(t, s, r), nil)
	if err != nil || st.Rewritten == 0 || st.After >= st.Before {
		t.Fatalf("recompress: %+v %v", st, err)
	}
	fsys := openRoot(t, s, "plain@1").FS()
	for p, want := range goFiles {
		if got, err := fsys.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after recompress %s: %v", p, err)
		}
	}
	if st2, err := s.Recompress(ctx, dGo, zstd.SpeedDefault, rootChunks(t, s, r), nil); err != nil || st2.Rewritten != 0 {
		t.Fatalf("second recompress rewrote %d: %v", st2.Rewritten, err)
	}
	s.Close()

	// A damaged dictionary is detected, never used.
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	sqlitex.Execute(c, `UPDATE dicts SET data = zeroblob(length(data)) WHERE name = 'yaml'`, nil)
	c.Close()
	s, err = store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p := range yamlNewFiles {
		if _, err := openRoot(t, s, "yaml@1").FS().ReadFile(p); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("read with a damaged dictionary: %v", err)
		}
		break
	}
	rep, err := s.Check(ctx, false, nil)
	if err != nil || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Err.Error(), "dictionary") {
		t.Fatalf("check with a damaged dictionary: %v %v", err, rep.Problems)
	}
}

// rootChunks returns the chunks of root r.
func rootChunks(t *testing.T, s *store.Store, r store.Root) []hash.Hash {
	t.Helper()
	hs, err := walk.Chunks(context.Background(), s.Objects, []store.Root{r})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}
