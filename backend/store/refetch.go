package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/spraydryfs/spraydryfs/backend/hash"
)

// Refetcher is implemented by sources whose objects can reach the reader
// through caches that may hold a damaged or stale copy (HTTP caches, CDNs,
// a local cache of a remote). When an object fails verification, Objects
// reads it once more with a context marked by Refetch, and such a source
// then fetches it from its origin, bypassing those caches.
type Refetcher interface {
	Source
	// Refetches reports whether reading again with a Refetch context can
	// give different bytes.
	Refetches() bool
}

type refetchKey struct{}

// Refetch returns ctx marked for reading objects from their origin,
// bypassing caches (HTTP: Cache-Control: no-cache).
func Refetch(ctx context.Context) context.Context {
	return context.WithValue(ctx, refetchKey{}, true)
}

// IsRefetch reports whether ctx was marked by Refetch.
func IsRefetch(ctx context.Context) bool {
	v, _ := ctx.Value(refetchKey{}).(bool)
	return v
}

type multiKey struct{}

// ListedMulti returns ctx marked for reading a file whose verified, sealed
// listing names a chunk list: a source that would first probe for the
// file as one chunk (a layout: a one-chunk file has no list object) can
// ask for the list at once.
func ListedMulti(ctx context.Context) context.Context {
	return context.WithValue(ctx, multiKey{}, true)
}

// IsListedMulti reports whether ctx was marked by ListedMulti.
func IsListedMulti(ctx context.Context) bool {
	v, _ := ctx.Value(multiKey{}).(bool)
	return v
}

// refError marks a failure of an object's reference (a delta chunk's
// reference, a delta listing's base): refetching the dependant itself
// would not help, and the reference was already retried on its own.
type refError struct{ err error }

func (e refError) Error() string { return e.err.Error() }
func (e refError) Unwrap() error { return e.err }

// retry reports whether err, from decoding an object that src gave,
// calls for reading that object once more from its origin.
func (o *Objects) retry(ctx context.Context, err error) bool {
	r, ok := o.src.(Refetcher)
	if !ok || !r.Refetches() || IsRefetch(ctx) || !errors.Is(err, ErrCorrupt) {
		return false
	}
	var re refError
	return !errors.As(err, &re)
}

// ListingBase returns the listing that the stored listing record rec is a
// delta against, or zero when it is stored whole.
func ListingBase(rec []byte) (hash.Hash, error) {
	r, err := parseDirRecord(rec)
	if err != nil {
		return hash.Zero, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r.base, nil
}
