package layout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Target is where push writes a layout: a directory here, an S3 bucket
// prefix later (Put with If-None-Match: *, UpdateIndex with If-Match).
type Target interface {
	// Has reports whether object key is present.
	Has(ctx context.Context, key string) (bool, error)
	// Put stores object key unless it is present. A reader never sees a
	// partial object.
	Put(ctx context.Context, key string, data []byte) error
	// UpdateIndex replaces the index with what update makes of the
	// current one (nil when there is none), so that concurrent pushes of
	// different roots keep both. Every object written before it must be
	// durable before the new index is.
	UpdateIndex(ctx context.Context, update func(old []byte) ([]byte, error)) error
}

// Fetcher reads the files of a layout.
type Fetcher interface {
	// Fetch returns file key, at most limit bytes; fresh asks to bypass
	// any cache between the reader and the origin. A missing file is an
	// error wrapping ErrNotFound.
	Fetch(ctx context.Context, key string, limit int64, fresh bool) ([]byte, error)
}

// Dir is a layout in a local directory: a Target and a Fetcher.
type Dir struct{ root string }

// NewDir returns the layout in directory root, which need not exist yet.
func NewDir(root string) *Dir { return &Dir{root: root} }

// IsDir reports whether path is a directory holding a layout index.
func IsDir(path string) bool {
	st, err := os.Stat(filepath.Join(path, IndexKey))
	return err == nil && st.Mode().IsRegular()
}

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// Has implements Target. An empty file is not there: objects are renamed
// into place unsynced and the file system synced once a push is done, so
// a crash of the machine in between can leave empty files, which the next
// push must write again.
func (d *Dir) Has(_ context.Context, key string) (bool, error) {
	st, err := os.Lstat(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil && st.Size() > 0, err
}

// tmpDir holds files being written; what a killed push left there is
// removed by a later push once it is staleAfter old.
const (
	tmpDir     = "tmp"
	staleAfter = time.Hour
)

// Put implements Target: a temporary file in tmp/, renamed into place.
// An object there already is left as it is.
func (d *Dir) Put(_ context.Context, key string, data []byte) error {
	if st, err := os.Lstat(d.path(key)); err == nil && st.Size() > 0 {
		return nil
	}
	return d.Write(key, data)
}

// Write writes object key as Put does, without looking whether it is
// there first (for a caller that knows it is not, such as a cache). Its
// fan-out directory is made when the first write into it fails for the
// want of it, not looked for at each write.
func (d *Dir) Write(key string, data []byte) error {
	p := d.path(key)
	err := d.writeAtomic(p, data, false)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("layout %s: %w", d.root, err)
		}
		err = d.writeAtomic(p, data, false)
	}
	return err
}

// writeAtomic writes data to p through a temporary file in tmp/ and a
// rename; with sync, the file is synced before the rename and the
// directory after.
func (d *Dir) writeAtomic(p string, data []byte, sync bool) error {
	return WriteAtomic(filepath.Join(d.root, tmpDir), p, data, sync || syncEachObject)
}

// WriteAtomic writes data to p through a temporary file in directory tmp
// (on p's file system, made if missing) and a rename, so that a reader
// sees the whole file or none; with sync, the file is synced before the
// rename and its directory after. A failed write leaves no temporary file.
func WriteAtomic(tmp, p string, data []byte, sync bool) error {
	f, err := os.CreateTemp(tmp, "put-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(tmp, 0o755); err == nil {
			f, err = os.CreateTemp(tmp, "put-*")
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	name := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, p)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if sync {
		if dir, err := os.Open(filepath.Dir(p)); err == nil {
			dir.Sync()
			dir.Close()
		}
	}
	return nil
}

// UpdateIndex implements Target. Pushes to one directory take turns on an
// flock of index.lock; the file system is synced before the index is
// replaced, so every object it names is on disk first.
func (d *Dir) UpdateIndex(_ context.Context, update func(old []byte) ([]byte, error)) error {
	if err := os.MkdirAll(d.root, 0o755); err != nil {
		return fmt.Errorf("layout %s: %w", d.root, err)
	}
	lock, err := os.OpenFile(filepath.Join(d.root, "index.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("layout %s: %w", d.root, err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return fmt.Errorf("layout %s: lock index: %w", d.root, err)
	}
	p := d.path(IndexKey)
	old, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("layout %s: %w", d.root, err)
	}
	b, err := update(old)
	if err != nil {
		return err
	}
	if err := syncFS(lock); err != nil {
		return fmt.Errorf("layout %s: sync: %w", d.root, err)
	}
	if err := d.writeAtomic(p, b, true); err != nil {
		return err
	}
	d.removeStale()
	return nil
}

// removeStale removes temporary files that killed pushes left behind.
func (d *Dir) removeStale() {
	tmps := filepath.Join(d.root, tmpDir)
	ents, _ := os.ReadDir(tmps)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			os.Remove(filepath.Join(tmps, e.Name()))
		}
	}
}

// Fetch implements Fetcher.
func (d *Dir) Fetch(_ context.Context, key string, limit int64, _ bool) ([]byte, error) {
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", store.ErrCorrupt, key, limit)
	}
	return b, nil
}
