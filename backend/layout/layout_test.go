package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/chunk"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

func sampleObjects() [][]byte {
	h := hash.Sum([]byte("content"))
	ref1, ref2, dict := hash.Sum([]byte("r1")), hash.Sum([]byte("r2")), hash.Sum([]byte("d"))
	return [][]byte{
		EncodeChunk(h, store.Frame{Size: 5, Codec: chunk.Raw, Data: []byte("hello")}),
		EncodeChunk(h, store.Frame{Size: 1000, Codec: chunk.Zstd, Dict: dict, Data: []byte{1, 2, 3}}),
		EncodeChunk(h, store.Frame{Size: 70000, Codec: chunk.Delta, Refs: []hash.Hash{ref1, ref2}, Depth: 3, Data: []byte{9}}),
		EncodeListing(h, []byte{0, 1, 2}),
		EncodeChunkList(h, store.FileRecord{Size: 1 << 20, List: tree.EncodeChunkList([]tree.ChunkRef{{Hash: ref1, Size: 1 << 20}})}),
		EncodeDict(h, []byte("dictionary bytes")),
	}
}

func TestObjectRoundTrip(t *testing.T) {
	h := hash.Sum([]byte("content"))
	for i, b := range sampleObjects() {
		k := Kind(b[5])
		o, err := Decode(b, k, h)
		if err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		if got := encode(o); !bytes.Equal(got, b) {
			t.Errorf("object %d: re-encoded differently", i)
		}
		if _, err := Decode(b, k, hash.Sum([]byte("other"))); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("object %d under another address: %v", i, err)
		}
		if _, err := Decode(b, k%4+1, h); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("object %d as another kind: %v", i, err)
		}
		if _, err := Decode(b[:headerSize+1], k, h); k != Listing && k != Dict && !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("object %d cut after its header: %v", i, err)
		}
	}
}

// encode is the encoder matching o's kind.
func encode(o Object) []byte {
	switch o.Kind {
	case Chunk:
		return EncodeChunk(o.Hash, o.Frame)
	case Listing:
		return EncodeListing(o.Hash, o.Record)
	case ChunkList:
		return EncodeChunkList(o.Hash, o.File)
	}
	return EncodeDict(o.Hash, o.Data)
}

func TestDecodeRefusesBadHeaders(t *testing.T) {
	h := hash.Sum([]byte("content"))
	good := EncodeChunk(h, store.Frame{Size: 5, Codec: chunk.Raw, Data: []byte("hello")})
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":          nil,
		"magic":          edit(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":        edit(func(b []byte) []byte { b[4] = 2; return b }),
		"codec":          edit(func(b []byte) []byte { b[headerSize] = 9; return b }),
		"raw size":       edit(func(b []byte) []byte { b[headerSize+1] = 6; return b }),
		"dict flag":      edit(func(b []byte) []byte { b[headerSize+3] = 2; return b }),
		"refs on raw":    EncodeChunk(h, store.Frame{Size: 1, Codec: chunk.Zstd, Refs: []hash.Hash{h}, Depth: 1}),
		"delta no refs":  EncodeChunk(h, store.Frame{Size: 1, Codec: chunk.Delta, Depth: 1}),
		"too deep":       EncodeChunk(h, store.Frame{Size: 1, Codec: chunk.Delta, Refs: []hash.Hash{h}, Depth: store.MaxChainDepth + 1}),
		"too large":      EncodeChunk(h, store.Frame{Size: tree.MaxChunkSize + 1, Codec: chunk.Zstd}),
		"too many refs":  EncodeChunk(h, store.Frame{Size: 1, Codec: chunk.Delta, Refs: make([]hash.Hash, MaxRefs+1), Depth: 1}),
		"non-minimal":    append(append(bytes.Clone(good[:headerSize+1]), 0x85, 0x00), good[headerSize+2:]...),
		"empty listing":  EncodeListing(h, nil),
		"empty list":     EncodeChunkList(h, store.FileRecord{Size: 3}),
		"empty dict":     EncodeDict(h, nil),
		"oversized file": append(header(Chunk, h, 0), make([]byte, MaxObjectSize)...),
	}
	for name, b := range cases {
		k := Chunk
		if len(b) > 5 && b[5] != 0 {
			k = Kind(b[5])
		}
		if _, err := Decode(b, k, h); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestKeys(t *testing.T) {
	h := hash.Sum([]byte("x"))
	for k := Chunk; k <= Dict; k++ {
		key := Key(k, h)
		if !strings.HasPrefix(key, "objects/"+k.String()+"/"+h.String()[7:9]+"/") {
			t.Errorf("key %s", key)
		}
		gk, gh, err := ParseKey(key)
		if err != nil || gk != k || gh != h {
			t.Errorf("ParseKey(%s) = %v %v %v", key, gk, gh, err)
		}
	}
	for _, bad := range []string{"index.json", "objects/chunk/ab", "objects/x/ab/cd", "objects/chunk/AB/" + strings.Repeat("0", 62),
		"objects/chunk/00/" + strings.Repeat("0", 61), "objects/chunk/../" + strings.Repeat("0", 62)} {
		if _, _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func sampleRoots() []store.Root {
	top := tree.Entry{Name: "top", Type: tree.TypeDir, Mode: 0o755, Hash: hash.Sum([]byte("listing")), Size: 3, Nlink: 2}
	t0 := time.Unix(1700000000, 123456789)
	return []store.Root{
		{Name: "b", Version: "1", Top: top, Created: t0, Files: 3, Bytes: 100},
		{Name: "a", Version: "2", Top: top, Created: t0.Add(time.Hour), Files: 1, Bytes: 1},
		{Name: "a", Version: "1", Top: top, Created: t0, Files: 0, Bytes: 0},
	}
}

func TestIndexRoundTrip(t *testing.T) {
	b, err := EncodeIndex(sampleRoots())
	if err != nil {
		t.Fatal(err)
	}
	roots, err := DecodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range roots {
		ids = append(ids, r.ID())
	}
	if strings.Join(ids, " ") != "a@1 a@2 b@1" {
		t.Fatalf("order %v", ids)
	}
	if !reflect.DeepEqual(roots[2].Top, sampleRoots()[0].Top) || !roots[2].Created.Equal(sampleRoots()[0].Created) {
		t.Errorf("root differs: %+v", roots[2])
	}
	b2, _ := EncodeIndex(roots)
	if !bytes.Equal(b, b2) {
		t.Error("index is not canonical")
	}
}

func TestIndexStrict(t *testing.T) {
	good, _ := EncodeIndex(sampleRoots())
	var m map[string]any
	json.Unmarshal(good, &m)
	mutate := func(f func(m map[string]any)) []byte {
		var c map[string]any
		json.Unmarshal(good, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	root0 := func(m map[string]any) map[string]any { return m["roots"].([]any)[0].(map[string]any) }
	cases := map[string][]byte{
		"not json":     []byte("{"),
		"trailing":     append(bytes.Clone(good), "{}"...),
		"format":       mutate(func(m map[string]any) { m["format"] = "other" }),
		"version":      mutate(func(m map[string]any) { m["version"] = 2 }),
		"unknown":      mutate(func(m map[string]any) { m["extra"] = 1 }),
		"bad name":     mutate(func(m map[string]any) { root0(m)["name"] = "a/b" }),
		"latest":       mutate(func(m map[string]any) { root0(m)["version"] = "latest" }),
		"bad top":      mutate(func(m map[string]any) { root0(m)["top"] = "AAAA" }),
		"bad base64":   mutate(func(m map[string]any) { root0(m)["top"] = "%%" }),
		"bad time":     mutate(func(m map[string]any) { root0(m)["created"] = "yesterday" }),
		"negative":     mutate(func(m map[string]any) { root0(m)["files"] = -1 }),
		"twice":        mutate(func(m map[string]any) { m["roots"] = append(m["roots"].([]any), m["roots"].([]any)[0]) }),
		"wrong type":   mutate(func(m map[string]any) { root0(m)["files"] = "many" }),
		"roots object": mutate(func(m map[string]any) { m["roots"] = map[string]any{} }),
	}
	for name, b := range cases {
		if _, err := DecodeIndex(b); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestMergeIndex(t *testing.T) {
	rs := sampleRoots()
	all, err := MergeIndex(rs[:1], rs[1:])
	if err != nil || len(all) != 3 {
		t.Fatalf("merge: %d roots, %v", len(all), err)
	}
	again, err := MergeIndex(all, rs[:2])
	if err != nil || len(again) != 3 {
		t.Fatalf("merge again: %d roots, %v", len(again), err)
	}
	other := rs[0]
	other.Top.Hash = hash.Sum([]byte("else"))
	if _, err := MergeIndex(all, []store.Root{other}); err == nil {
		t.Fatal("a root republished with other content was accepted")
	}
}

// FuzzDecodeObject: Decode never panics, fails only with ErrCorrupt, and
// what it accepts re-encodes to the same bytes.
func FuzzDecodeObject(f *testing.F) {
	for _, b := range sampleObjects() {
		f.Add(b)
	}
	h := hash.Sum([]byte("content"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := Chunk; k <= Dict; k++ {
			o, err := Decode(b, k, h)
			if err != nil {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("error without ErrCorrupt: %v", err)
				}
				continue
			}
			if got := encode(o); !bytes.Equal(got, b) {
				t.Fatalf("accepted %x, re-encoded %x", b, got)
			}
		}
	})
}

// FuzzDecodeIndex: DecodeIndex never panics, fails only with ErrCorrupt,
// and what it accepts encodes to an index that decodes the same.
func FuzzDecodeIndex(f *testing.F) {
	good, _ := EncodeIndex(sampleRoots())
	f.Add(good)
	f.Add([]byte(`{"format":"spraydryfs-layout","version":1,"roots":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		roots, err := DecodeIndex(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		enc, err := EncodeIndex(roots)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeIndex(enc)
		if err != nil || len(again) != len(roots) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range roots {
			if again[i].ID() != roots[i].ID() || again[i].Top.Hash != roots[i].Top.Hash || !again[i].Created.Equal(roots[i].Created) {
				t.Fatalf("root %d changed: %+v -> %+v", i, roots[i], again[i])
			}
		}
	})
}
