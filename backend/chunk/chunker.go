// Package chunk cuts content into content-defined chunks and dries
// (compresses) and rehydrates (decompresses and verifies) single chunks.
package chunk

import (
	"encoding/json"
	"fmt"
	"io"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc-v1.0.0
)

// Params fix how content is cut. They are stored with the store so that
// every writer cuts the same way and identical content dedups.
type Params struct {
	Algorithm string `json:"algorithm"`
	Min       int    `json:"min"`
	Avg       int    `json:"avg"`
	Max       int    `json:"max"`
}

// DefaultParams: normalized FastCDC (level 2) with a 64 KiB average, large
// enough for zstd to find context, small enough that one changed byte costs
// little.
func DefaultParams() Params {
	return Params{Algorithm: "fastcdc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
}

// String returns the JSON form stored in the store's metadata.
func (p Params) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// ParseParams reads the stored form and validates it.
func ParseParams(s string) (Params, error) {
	var p Params
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("chunker parameters %q: %w", s, err)
	}
	if _, err := NewChunker(p); err != nil {
		return p, err
	}
	return p, nil
}

// Chunker cuts one stream at a time; Reset starts the next. Not safe for
// concurrent use: give each worker its own.
type Chunker struct {
	c *chunkers.Chunker
}

// NewChunker returns a chunker for p with its own scan buffer.
func NewChunker(p Params) (*Chunker, error) {
	c, err := chunkers.NewChunkerBuffer(p.Algorithm, nil, &chunkers.ChunkerOpts{MinSize: p.Min, NormalSize: p.Avg, MaxSize: p.Max}, make([]byte, 2*p.Max))
	if err != nil {
		return nil, fmt.Errorf("chunker %s: %w", p, err)
	}
	return &Chunker{c: c}, nil
}

// Reset starts cutting r.
func (c *Chunker) Reset(r io.Reader) { c.c.Reset(r) }

// Next returns the next chunk, or io.EOF after the last. The slice is valid
// until the next call.
func (c *Chunker) Next() ([]byte, error) {
	for {
		b, err := c.c.Next()
		if len(b) > 0 {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
