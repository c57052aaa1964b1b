package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/backend/tree"
)

// changingFixture is a store and a source directory holding one
// multi-chunk file f, whose reads the test hook can interfere with.
type changingFixture struct {
	s    *store.Store
	src  string
	path string
	data []byte
}

func newChangingFixture(t *testing.T) *changingFixture {
	t.Helper()
	s, _, src := newStore(t)
	data := make([]byte, 1<<20) // several chunks
	rand.NewChaCha8([32]byte{1}).Read(data)
	p := filepath.Join(src, "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "other"), []byte("steady"), 0o644)
	return &changingFixture{s: s, src: src, path: p, data: data}
}

// hook makes change run before each read of f (attempt counts from 1),
// after ingest has stat'ed it.
func (fx *changingFixture) hook(t *testing.T, change func(attempt int)) {
	testHookRead = func(p string, attempt int) {
		if p == fx.path {
			change(attempt)
		}
	}
	t.Cleanup(func() { testHookRead = nil })
}

// tear overwrites the head and the tail of f in place, keeping its size, as
// an editor or a downloader rewriting the file would. The pause moves the
// clock past the timestamp granularity of any file system.
func (fx *changingFixture) tear(t *testing.T, b byte) {
	time.Sleep(20 * time.Millisecond)
	f, err := os.OpenFile(fx.path, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	block := bytes.Repeat([]byte{b}, 4096)
	copy(fx.data, block)
	copy(fx.data[len(fx.data)-len(block):], block)
	f.WriteAt(block, 0)
	f.WriteAt(block, int64(len(fx.data)-len(block)))
}

func (fx *changingFixture) ingest(opt Options) (*Result, error) {
	opt.Name, opt.Version, opt.Sources = "c", "1", []Source{{Dir: fx.src}}
	return Run(context.Background(), fx.s, opt)
}

// stored returns the entry of f in root c@1.
func (fx *changingFixture) stored(t *testing.T) tree.Entry {
	t.Helper()
	ctx := context.Background()
	r, err := fx.s.Root(ctx, "c", "1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := fx.s.Dir(ctx, r.Top.Hash)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := d.Lookup("f")
	if !ok {
		t.Fatal("f is not in the root")
	}
	return *e
}

// wantContent checks that the root holds f as it is on disk now, with its
// current size and mtime.
func (fx *changingFixture) wantContent(t *testing.T) {
	t.Helper()
	e := fx.stored(t)
	disk, _ := os.ReadFile(fx.path)
	if !bytes.Equal(disk, fx.data) {
		t.Fatal("test bug: the file on disk is not what the test wrote")
	}
	st, _ := os.Stat(fx.path)
	if e.Hash != hash.Sum(disk) || e.Size != int64(len(disk)) {
		t.Errorf("stored f (%d bytes, %s) is not the file on disk (%d bytes, %s)", e.Size, e.Hash, len(disk), hash.Sum(disk))
	}
	if e.MTime != st.ModTime().UnixNano() {
		t.Errorf("stored mtime %d, file's %d", e.MTime, st.ModTime().UnixNano())
	}
}

func TestTornFileIsReadAgain(t *testing.T) {
	fx := newChangingFixture(t)
	fx.hook(t, func(attempt int) {
		if attempt == 1 {
			fx.tear(t, 0)
		}
	})
	if _, err := fx.ingest(Options{}); err != nil {
		t.Fatal(err)
	}
	fx.wantContent(t)
}

func TestGrowingFileIsReadAgain(t *testing.T) {
	fx := newChangingFixture(t)
	fx.hook(t, func(attempt int) {
		if attempt == 1 {
			f, _ := os.OpenFile(fx.path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("more"))
			f.Close()
			fx.data = append(fx.data, "more"...)
		}
	})
	if _, err := fx.ingest(Options{}); err != nil {
		t.Fatal(err)
	}
	fx.wantContent(t)
}

func TestEverChangingFileFailsIngest(t *testing.T) {
	fx := newChangingFixture(t)
	reads := 0
	fx.hook(t, func(attempt int) {
		reads++
		fx.tear(t, byte(attempt))
	})
	_, err := fx.ingest(Options{})
	if err == nil || !strings.Contains(err.Error(), fx.path) || !strings.Contains(err.Error(), "kept changing while") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("ingest of a file that keeps changing: %v; want a one-line error naming %s", err, fx.path)
	}
	if reads != maxReadAttempts {
		t.Errorf("file read %d times, want %d", reads, maxReadAttempts)
	}
	if _, err := fx.s.Root(context.Background(), "c", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed ingest left a root: %v", err)
	}
}

func TestAllowChangingStoresWhatWasRead(t *testing.T) {
	fx := newChangingFixture(t)
	fx.hook(t, func(attempt int) { fx.tear(t, byte(attempt)) })
	var logs bytes.Buffer
	if _, err := fx.ingest(Options{AllowChanging: true, Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), fx.path) {
		t.Errorf("no warning naming the file:\n%s", logs.String())
	}
	if e := fx.stored(t); e.Hash != hash.Sum(fx.data) {
		t.Errorf("stored f is not the last state read")
	}
}

func TestHardLinksChangedBetweenReadsFail(t *testing.T) {
	for _, allow := range []bool{false, true} {
		fx := newChangingFixture(t)
		link := filepath.Join(fx.src, "g") // read after f
		if err := os.Link(fx.path, link); err != nil {
			t.Fatal(err)
		}
		testHookRead = func(p string, attempt int) {
			if p == link && attempt == 1 {
				fx.tear(t, 1)
			}
		}
		t.Cleanup(func() { testHookRead = nil })
		_, err := fx.ingest(Options{Workers: 1, AllowChanging: allow})
		switch {
		case allow && err != nil:
			t.Fatalf("--allow-changing: %v", err)
		case !allow && (err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), fx.path)):
			t.Fatalf("links read with different contents: %v; want an error naming both", err)
		}
	}
}
