package webdav

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend"
	"github.com/spraydryfs/spraydryfs/backend/store"
	"github.com/spraydryfs/spraydryfs/ingest"
)

func TestListingPage(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "s.sdfs"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := t.TempDir()
	for _, d := range []string{"b-dir/sub", "z-dir"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	os.WriteFile(filepath.Join(src, "a-file"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "b-dir/sub/f"), []byte("f"), 0o644)
	for _, v := range []string{"v1", "v2"} {
		if _, err := ingest.Run(context.Background(), s, ingest.Options{Name: "demo", Version: v, Sources: []ingest.Source{{Dir: src}}}); err != nil {
			t.Fatal(err)
		}
	}
	h := New(backend.OpenNamespace(s.Objects), Options{Log: slog.New(slog.DiscardHandler)})
	get := func(p string) string {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		b, _ := io.ReadAll(w.Result().Body)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", p, w.Code, b)
		}
		return string(b)
	}

	// Directories first, each group in name order.
	page := get("/demo/v2/")
	if a, b, z := strings.Index(page, `href="./a-file"`), strings.Index(page, `href="./b-dir/"`), strings.Index(page, `href="./z-dir/"`); a < 0 || b < 0 || z < 0 || !(b < z && z < a) {
		t.Errorf("want b-dir/, z-dir/, then a-file:\n%s", page)
	}
	// A breadcrumb: every ancestor is a link.
	page = get("/demo/v2/b-dir/sub/")
	for _, want := range []string{`<a href="../../../../">/</a>`, `<a href="../../../">demo</a>/`, `<a href="../../">v2</a>/`, `<a href="../">b-dir</a>/`, `sub/</h1>`} {
		if !strings.Contains(page, want) {
			t.Errorf("breadcrumb lacks %s:\n%s", want, page)
		}
	}
	// latest is shown as what it is, with a link to its target.
	page = get("/demo/")
	if !strings.Contains(page, `<a href="./latest/">latest/</a> → <a href="./v2/">v2</a>`) {
		t.Errorf("latest is not shown as a link to v2:\n%s", page)
	}
}
