package layout

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// The roots index is JSON:
//
//	{"format": "spraydryfs-layout", "version": 1, "roots": [
//	  {"name": "…", "version": "…", "top": "<base64 of the top entry>",
//	   "created": "<RFC 3339, ns>", "files": N, "bytes": N}, …]}
//
// The top entry is encoded as the store encodes it: a one-entry listing
// whose entry, named "top", is the root directory's (attributes and
// listing address). Roots are sorted by name, then oldest first.
//
// A signed index is version 2 (see SignIndex): the same roots, with the
// time of publication, inside a "signed" member whose exact bytes an
// ed25519 signature covers:
//
//	{"format": "spraydryfs-layout", "version": 2,
//	 "signed": {"published": "<RFC 3339, ns>", "roots": [ … ]},
//	 "key": "<base64 public key>", "signature": "<base64 signature>"}

const (
	indexFormat  = "spraydryfs-layout"
	indexVersion = 1
	// signedVersion is a signed index's version. Readers that know only
	// version 1 refuse it, saying so, rather than read roots whose
	// signature they would not check.
	signedVersion = 2
	// MaxIndexSize bounds the index a reader accepts (about 100,000 roots).
	MaxIndexSize = 64 << 20
)

type indexJSON struct {
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Roots   []indexRoot `json:"roots"`
}

type indexRoot struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Top     string `json:"top"`
	Created string `json:"created"`
	Files   int64  `json:"files"`
	Bytes   int64  `json:"bytes"`
}

// EncodeIndex returns the unsigned index (version 1) of roots, sorted by
// name, then creation time (then version).
func EncodeIndex(roots []store.Root) ([]byte, error) {
	rs, err := encodeRoots(roots)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(indexJSON{Format: indexFormat, Version: indexVersion, Roots: rs}, "", " ")
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return append(b, '\n'), nil
}

// encodeRoots returns the index entries of roots, sorted.
func encodeRoots(roots []store.Root) ([]indexRoot, error) {
	roots = sortRoots(roots)
	out := make([]indexRoot, len(roots))
	for i, r := range roots {
		e := r.Top
		e.Name = "top"
		top, err := (&tree.Dir{Entries: []tree.Entry{e}}).Encode()
		if err != nil {
			return nil, fmt.Errorf("index: root %s: %w", r.ID(), err)
		}
		out[i] = indexRoot{Name: r.Name, Version: r.Version, Top: base64.StdEncoding.EncodeToString(top),
			Created: r.Created.UTC().Format(time.RFC3339Nano), Files: r.Files, Bytes: r.Bytes}
	}
	return out, nil
}

func sortRoots(roots []store.Root) []store.Root {
	roots = append([]store.Root(nil), roots...)
	sort.SliceStable(roots, func(i, j int) bool {
		a, b := roots[i], roots[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.Version < b.Version
	})
	return roots
}

func badIndex(format string, a ...any) error {
	return fmt.Errorf("%w: roots index: %s", store.ErrCorrupt, fmt.Sprintf(format, a...))
}

// DecodeIndex parses an index strictly, signed or not, and returns its
// roots (see ReadIndex).
func DecodeIndex(b []byte) ([]store.Root, error) {
	x, err := ReadIndex(b, nil)
	return x.Roots, err
}

// ReadIndex parses an index strictly: known format and version, no
// unknown fields, valid and distinct root names, decodable top entries,
// and for a signed index (version 2) the exact framing and a signature
// that verifies under the key it names. Every such fault is an error
// wrapping store.ErrCorrupt. Given trusted keys, it also refuses an
// unsigned index and one signed by another key, with an error wrapping
// ErrUntrusted.
func ReadIndex(b []byte, trust []ed25519.PublicKey) (Index, error) {
	if len(b) > MaxIndexSize {
		return Index{}, badIndex("%d bytes, more than %d", len(b), MaxIndexSize)
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Index{}, badIndex("%v", err)
	}
	if head.Format != indexFormat {
		return Index{}, badIndex("format %q, want %q", head.Format, indexFormat)
	}
	var x Index
	var err error
	switch head.Version {
	case indexVersion:
		x.Roots, err = decodeUnsigned(b)
	case signedVersion:
		x, err = decodeSigned(b)
	default:
		return Index{}, badIndex("version %d (this spraydryfs reads %d and %d)", head.Version, indexVersion, signedVersion)
	}
	if err != nil {
		return Index{}, err
	}
	if len(trust) > 0 {
		if err := x.trusted(trust); err != nil {
			return Index{}, err
		}
	}
	return x, nil
}

// decodeUnsigned decodes an index of version 1.
func decodeUnsigned(b []byte) ([]store.Root, error) {
	var x indexJSON
	if err := decodeStrict(b, &x); err != nil {
		return nil, err
	}
	return decodeRoots(x.Roots)
}

// decodeStrict decodes b into v: no unknown fields, nothing after.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badIndex("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badIndex("trailing data")
	}
	return nil
}

// decodeRoots checks and decodes the roots of an index.
func decodeRoots(js []indexRoot) ([]store.Root, error) {
	roots := make([]store.Root, len(js))
	seen := map[string]bool{}
	for i, j := range js {
		r, err := decodeRoot(j)
		if err != nil {
			return nil, badIndex("root %d: %v", i, err)
		}
		if seen[r.ID()] {
			return nil, badIndex("root %s listed twice", r.ID())
		}
		seen[r.ID()] = true
		roots[i] = r
	}
	return sortRoots(roots), nil
}

func decodeRoot(j indexRoot) (store.Root, error) {
	r := store.Root{Name: j.Name, Version: j.Version, Files: j.Files, Bytes: j.Bytes}
	if err := store.CheckName("root name", j.Name); err != nil {
		return r, err
	}
	if err := store.CheckName("version", j.Version); err != nil {
		return r, err
	}
	if j.Version == store.Latest {
		return r, fmt.Errorf("version %q is reserved", store.Latest)
	}
	if j.Files < 0 || j.Bytes < 0 {
		return r, fmt.Errorf("%s: negative counts", r.ID())
	}
	var err error
	if r.Created, err = time.Parse(time.RFC3339Nano, j.Created); err != nil {
		return r, fmt.Errorf("%s: created: %v", r.ID(), err)
	}
	top, err := base64.StdEncoding.Strict().DecodeString(j.Top)
	if err != nil {
		return r, fmt.Errorf("%s: top: %v", r.ID(), err)
	}
	d, err := tree.DecodeDir(top)
	if err != nil || len(d.Entries) != 1 || d.Entries[0].Type != tree.TypeDir || d.Entries[0].Name != "top" {
		return r, fmt.Errorf("%s: malformed top entry", r.ID())
	}
	r.Top = d.Entries[0]
	return r, nil
}

// MergeIndex adds roots to those of an existing index. A root already
// listed must name the same tree: a published NAME@VERSION never changes.
func MergeIndex(old, add []store.Root) ([]store.Root, error) {
	byID := map[string]store.Root{}
	for _, r := range old {
		byID[r.ID()] = r
	}
	out := append([]store.Root(nil), old...)
	for _, r := range add {
		if o, ok := byID[r.ID()]; ok {
			if o.Top.Hash != r.Top.Hash {
				return nil, fmt.Errorf("root %s is already published with other content (%s, not %s)", r.ID(), o.Top.Hash, r.Top.Hash)
			}
			continue
		}
		byID[r.ID()] = r
		out = append(out, r)
	}
	return sortRoots(out), nil
}

// Select returns the roots named by refs (NAME for every version of a
// name, NAME@VERSION for one; none for every root) from all.
func Select(all []store.Root, refs []store.Ref) ([]store.Root, error) {
	if len(refs) == 0 {
		return all, nil
	}
	var out []store.Root
	taken := map[string]bool{}
	for _, ref := range refs {
		found := false
		for i := len(all) - 1; i >= 0; i-- { // newest first, for latest
			r := all[i]
			if r.Name != ref.Name || (ref.Version != "" && ref.Version != store.Latest && r.Version != ref.Version) {
				continue
			}
			found = true
			if !taken[r.ID()] {
				taken[r.ID()] = true
				out = append(out, r)
			}
			if ref.Version == store.Latest {
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("root %s: %w", ref, store.ErrNotFound)
		}
	}
	return out, nil
}
