package layout

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
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
		EncodePack(h, []Object{
			{Kind: Chunk, Hash: ref1, Frame: store.Frame{Size: 2, Codec: chunk.Raw, Data: []byte("r1")}},
			{Kind: Chunk, Hash: ref2, Frame: store.Frame{Size: 1000, Codec: chunk.Zstd, Dict: dict, Data: []byte{1, 2, 3}}},
		}),
		EncodePack(h, nil),
		EncodeTree(h, [][]byte{EncodeListing(ref1, []byte{0, 1}), EncodeListing(ref2, []byte{0, 2, 3})}),
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
		if _, err := Decode(b, k%5+1, h); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("object %d as another kind: %v", i, err)
		}
		if _, err := Decode(b[:headerSize+1], k, h); k != Listing && k != Dict && len(b) > headerSize+1 && !errors.Is(err, store.ErrCorrupt) {
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
	case Pack:
		return EncodePack(o.Hash, o.Pack)
	case Tree:
		members := make([][]byte, len(o.Pack))
		for i, m := range o.Pack {
			members[i] = EncodeListing(m.Hash, m.Record)
		}
		return EncodeTree(o.Hash, members)
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
	for k := Chunk; k <= Pack; k++ {
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
		"version":      mutate(func(m map[string]any) { m["version"] = 3 }),
		"v2 unsigned":  mutate(func(m map[string]any) { m["version"] = 2 }),
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
		for k := Chunk; k <= Tree; k++ {
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
	k, _ := GenerateKey()
	signed, _ := SignIndex(sampleRoots(), time.Unix(1800000000, 0), k)
	f.Add(signed)
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

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestKeyText(t *testing.T) {
	k := testKey(t)
	sec := FormatSecretKey(k)
	if !strings.HasPrefix(sec, SecretKeyPrefix) || strings.Count(sec, "\n") != 1 {
		t.Fatalf("secret key text %q", sec)
	}
	k2, err := ParseSecretKey(sec)
	if err != nil || !k2.Equal(k) {
		t.Fatalf("secret key round trip: %v", err)
	}
	p, err := ParsePublicKey(" " + FormatPublicKey(pub(k)) + "\n")
	if err != nil || !p.Equal(pub(k)) {
		t.Fatalf("public key round trip: %v", err)
	}
	for _, bad := range []string{"", "hello", PublicKeyPrefix, PublicKeyPrefix + "AAAA", PublicKeyPrefix + "%%%",
		FormatPublicKey(pub(k)) + "x", strings.TrimPrefix(FormatPublicKey(pub(k)), PublicKeyPrefix)} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("public key %q accepted", bad)
		}
	}
	if _, err := ParsePublicKey(sec); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("a secret key taken as public: %v", err)
	}
	if _, err := ParseSecretKey(FormatPublicKey(pub(k))); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("a public key taken as secret: %v", err)
	}
}

func TestSignedIndex(t *testing.T) {
	k, other := testKey(t), testKey(t)
	when := time.Date(2026, 12, 1, 22, 0, 0, 123, time.UTC)
	b, err := SignIndex(sampleRoots(), when, k)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ReadIndex(b, []ed25519.PublicKey{pub(other), pub(k)})
	if err != nil {
		t.Fatal(err)
	}
	if !x.Published.Equal(when) || !x.Signer.Equal(pub(k)) || len(x.Roots) != 3 || x.Roots[0].ID() != "a@1" {
		t.Fatalf("read back %+v", x)
	}
	unsigned, _ := EncodeIndex(sampleRoots())
	plain, _ := DecodeIndex(unsigned)
	if !reflect.DeepEqual(x.Roots, plain) {
		t.Error("signed and unsigned indexes of the same roots decode differently")
	}
	// Without trusted keys, a signed index reads as an unsigned one does
	// (its signature still checked against the key it names).
	if roots, err := DecodeIndex(b); err != nil || !reflect.DeepEqual(roots, plain) {
		t.Fatalf("signed index without trust: %v", err)
	}
	if _, err := ReadIndex(unsigned, []ed25519.PublicKey{pub(k)}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned index with trust: %v", err)
	}
	if _, err := ReadIndex(b, []ed25519.PublicKey{pub(other)}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not a trusted key") {
		t.Errorf("index signed by another key: %v", err)
	}
	again, _ := SignIndex(x.Roots, when, k)
	if !bytes.Equal(again, b) {
		t.Error("signing is not deterministic")
	}
	// Merged with another root and signed again, later: both verify.
	more := sampleRoots()[0]
	more.Version = "9"
	merged, err := MergeIndex(x.Roots, []store.Root{more})
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := SignIndex(merged, when.Add(time.Second), k)
	if y, err := ReadIndex(b2, []ed25519.PublicKey{pub(k)}); err != nil || len(y.Roots) != 4 || !y.Published.After(x.Published) {
		t.Fatalf("merged and re-signed: %+v, %v", y, err)
	}
}

// TestSignedIndexEveryByte: with a trusted key, a signed index with any
// bit of any byte flipped is refused; so is one cut short or extended.
func TestSignedIndexEveryByte(t *testing.T) {
	k := testKey(t)
	trust := []ed25519.PublicKey{pub(k)}
	b, err := SignIndex(sampleRoots()[:2], time.Unix(1800000000, 5), k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, err := ReadIndex(c, trust); err == nil {
				t.Fatalf("byte %d (%q) with bit %d flipped accepted", i, b[i], bit)
			}
		}
	}
	for _, c := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), '\n'), append([]byte(" "), b...)} {
		if _, err := ReadIndex(c, trust); err == nil {
			t.Fatalf("index of %d bytes (not %d) accepted", len(c), len(b))
		}
	}
}

// memFetcher is a layout held in memory.
type memFetcher struct{ files map[string][]byte }

func (m *memFetcher) Fetch(_ context.Context, key string, _ int64, _ bool) ([]byte, error) {
	b, ok := m.files[key]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

// TestSourceTrust: a Source given trusted keys refuses an unsigned or
// wrongly signed index at first, and on a refresh keeps the last good
// one: also when the index is replaced by one published earlier.
func TestSourceTrust(t *testing.T) {
	k, other := testKey(t), testKey(t)
	rs := sampleRoots()
	t0 := time.Unix(1800000000, 0)
	signed := func(roots []store.Root, at time.Time, key ed25519.PrivateKey) []byte {
		b, err := SignIndex(roots, at, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unsigned, _ := EncodeIndex(rs)
	ctx := context.Background()
	for name, b := range map[string][]byte{"unsigned": unsigned, "other key": signed(rs, t0, other)} {
		f := &memFetcher{files: map[string][]byte{IndexKey: b}}
		src := NewSource(f, SourceOptions{Trust: []ed25519.PublicKey{pub(k)}})
		if _, err := src.Roots(ctx); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v", name, err)
		}
	}

	var logs bytes.Buffer
	f := &memFetcher{files: map[string][]byte{IndexKey: signed(rs[:1], t0, k)}}
	src := NewSource(f, SourceOptions{Trust: []ed25519.PublicKey{pub(k)}, IndexTTL: time.Nanosecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	count := func() int {
		t.Helper()
		roots, err := src.Roots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(roots)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d roots", n)
	}
	f.files[IndexKey] = signed(rs[:2], t0.Add(time.Second), k)
	if n := count(); n != 2 {
		t.Fatalf("%d roots after a newer index", n)
	}
	bad := map[string][]byte{
		"rollback":  signed(rs, t0, k),
		"same time": signed(rs, t0.Add(time.Second), k),
		"unsigned":  unsigned,
		"other key": signed(rs, t0.Add(time.Hour), other),
	}
	for name, b := range bad {
		logs.Reset()
		f.files[IndexKey] = b
		if n := count(); n != 2 {
			t.Errorf("%s: %d roots, want the last good index's 2", name, n)
		}
		if !strings.Contains(logs.String(), "cannot refresh the roots index") {
			t.Errorf("%s: no warning logged: %q", name, logs.String())
		}
	}
	f.files[IndexKey] = signed(rs, t0.Add(time.Hour), k)
	if n := count(); n != 3 {
		t.Fatalf("%d roots after a newer index", n)
	}
}

// TestJoinedFetchOutlivesItsFirstCaller: a fetch joined by a second caller
// and then canceled by its first fails the first alone; the second
// fetches again and gets the object, and a joining caller whose own
// deadline passes stops waiting.
func TestJoinedFetchOutlivesItsFirstCaller(t *testing.T) {
	data := []byte("hello, chunk")
	h := hash.Sum(data)
	f := &stallingFetcher{body: EncodeChunk(h, store.Frame{Size: len(data), Codec: chunk.Raw, Data: data}),
		gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := NewSource(f, SourceOptions{})
	first, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { _, err := s.Frame(first, h); res <- err }()
	<-f.started
	short, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	if _, err := s.Frame(short, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a joining caller past its deadline: %v", err)
	}
	second := make(chan error, 1)
	go func() {
		fr, err := s.Frame(context.Background(), h)
		if err == nil && !bytes.Equal(fr.Data, data) {
			err = errors.New("wrong data")
		}
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it join
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled caller: %v", err)
	}
	close(f.gate)
	select {
	case err := <-second:
		if err != nil {
			t.Errorf("the joining caller, never canceled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the joining caller did not return")
	}
}

// stallingFetcher answers its first quick fetches at once; the others
// wait until gate closes (and answer) or their caller's context ends.
type stallingFetcher struct {
	body    []byte
	quick   int32
	n       atomic.Int32
	started chan struct{} // a waiting fetch began
	gate    chan struct{}
}

func (f *stallingFetcher) Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error) {
	if f.n.Add(1) <= f.quick {
		return f.body, nil
	}
	select {
	case f.started <- struct{}{}:
	default:
	}
	select {
	case <-f.gate:
		return f.body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestIndexRefreshBlocksNoLookup: while one caller's refresh of the index
// hangs (a black-holed remote), a caller with roots gets them at once and
// starts no other refresh, and a caller with none yet stops waiting when
// its own deadline passes; one that waits on gets the roots when the
// refreshing caller is canceled.
func TestIndexRefreshBlocksNoLookup(t *testing.T) {
	idx, err := EncodeIndex(sampleRoots())
	if err != nil {
		t.Fatal(err)
	}
	ids := func(roots []store.Root) string {
		var s []string
		for _, r := range roots {
			s = append(s, r.ID())
		}
		return strings.Join(s, " ")
	}
	const want = "a@1 a@2 b@1"
	// lookup runs Roots with a 100 ms deadline once a refresh hangs.
	lookup := func(t *testing.T, s *Source, f *stallingFetcher) (roots []store.Root, err error, ok bool) {
		t.Helper()
		select {
		case <-f.started:
		case <-time.After(10 * time.Second):
			t.Error("the refresh did not start")
			return nil, nil, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		type result struct {
			roots []store.Root
			err   error
		}
		res := make(chan result, 1)
		start := time.Now()
		go func() { r, err := s.Roots(ctx); res <- result{r, err} }()
		select {
		case r := <-res:
			if el := time.Since(start); el > 500*time.Millisecond {
				t.Errorf("a lookup with a 100 ms deadline took %v", el)
			}
			return r.roots, r.err, true
		case <-time.After(time.Second):
			t.Error("a lookup with a 100 ms deadline waited on another caller's refresh for over 1 s")
			return nil, nil, false
		}
	}
	// done waits for a refreshing caller, canceled or answered.
	done := func(t *testing.T, refresh chan error) {
		t.Helper()
		select {
		case <-refresh:
		case <-time.After(10 * time.Second):
			t.Error("the refreshing caller did not return")
		}
	}

	t.Run("known roots", func(t *testing.T) {
		f := &stallingFetcher{body: idx, quick: 1, started: make(chan struct{}, 1), gate: make(chan struct{})}
		s := NewSource(f, SourceOptions{IndexTTL: time.Nanosecond})
		if _, err := s.Roots(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		refresh := make(chan error, 1)
		go func() { _, err := s.Roots(ctx); refresh <- err }()
		roots, err, ok := lookup(t, s, f)
		if ok && (err != nil || ids(roots) != want) {
			t.Errorf("a lookup with roots during a refresh: %v, %d roots", err, len(roots))
		}
		if n := f.n.Load(); n != 2 {
			t.Errorf("%d index fetches, want 2 (one refresh at a time)", n)
		}
		cancel()
		done(t, refresh)
	})

	t.Run("no roots yet", func(t *testing.T) {
		f := &stallingFetcher{body: idx, started: make(chan struct{}, 1), gate: make(chan struct{})}
		s := NewSource(f, SourceOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		refresh := make(chan error, 1)
		go func() { _, err := s.Roots(ctx); refresh <- err }()
		if _, err, ok := lookup(t, s, f); ok && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a lookup without roots past its deadline: %v", err)
		}
		waiter := make(chan error, 1)
		go func() {
			roots, err := s.Roots(context.Background())
			if err == nil && ids(roots) != want {
				err = fmt.Errorf("roots %q", ids(roots))
			}
			waiter <- err
		}()
		time.Sleep(20 * time.Millisecond) // let it wait
		cancel()
		done(t, refresh)
		close(f.gate)
		select {
		case err := <-waiter:
			if err != nil {
				t.Errorf("a waiting caller, never canceled, after the refresher was: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the waiting caller did not return")
		}
	})
}

// countingIndex serves index body, or fails with err when set, counting
// fetches.
type countingIndex struct {
	body  []byte
	err   error
	calls int
}

func (f *countingIndex) Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.body, nil
}

// TestEmptyIndexIsAnIndex: an index that holds no roots is used for its
// TTL like any other, not fetched again at every lookup, and kept when a
// refresh fails.
func TestEmptyIndexIsAnIndex(t *testing.T) {
	idx, err := EncodeIndex(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &countingIndex{body: idx}
	s := NewSource(f, SourceOptions{IndexTTL: 50 * time.Millisecond})
	ctx := context.Background()
	for range 5 {
		if roots, err := s.Roots(ctx); err != nil || len(roots) != 0 {
			t.Fatalf("roots: %v, %v", roots, err)
		}
	}
	if f.calls != 1 {
		t.Errorf("5 lookups within the TTL fetched the index %d times, want 1", f.calls)
	}
	time.Sleep(60 * time.Millisecond)
	f.err = errors.New("origin down")
	if roots, err := s.Roots(ctx); err != nil || len(roots) != 0 {
		t.Errorf("roots when a refresh fails: %v, %v; want the last (empty) index", roots, err)
	}
	if f.calls != 2 {
		t.Errorf("fetches: %d, want 2", f.calls)
	}
}

// TestDirEmptyObjectIsMissing: an empty object file, what a machine crash
// between a push's renames and its sync can leave, counts as missing and
// is written again; a whole one is left alone.
func TestDirEmptyObjectIsMissing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d := NewDir(root)
	data := []byte("hello, chunk")
	key := Key(Chunk, hash.Sum(data))
	p := filepath.Join(root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Has(ctx, key); ok || err != nil {
		t.Errorf("Has of an empty object: %v, %v; want false", ok, err)
	}
	if err := d.Put(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, data) {
		t.Errorf("after Put: %q, %v", b, err)
	}
	if ok, err := d.Has(ctx, key); !ok || err != nil {
		t.Errorf("Has after Put: %v, %v", ok, err)
	}
	if err := d.Put(ctx, key, []byte("other")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
		t.Errorf("a whole object was rewritten: %q", b)
	}
}
