package retain

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// roots are in Roots order: by name, then oldest first, whatever the
// versions are called.
var roots = []store.Root{
	{Name: "a", Version: "9", Created: time.Unix(1, 0)},
	{Name: "a", Version: "10", Created: time.Unix(2, 0)},
	{Name: "a", Version: "1", Created: time.Unix(3, 0)},
	{Name: "b", Version: "x", Created: time.Unix(1, 0)},
}

func ids(rs []store.Root) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID())
	}
	return out
}

func TestKeepLastGoesByCreation(t *testing.T) {
	for n, want := range map[int][]string{1: {"a@9", "a@10"}, 2: {"a@9"}, 3: nil, 5: nil} {
		got, err := KeepLast(n, []string{"a", "b", "a"})(roots)
		if err != nil || !slices.Equal(ids(got), want) {
			t.Errorf("KeepLast(%d) = %v, %v; want %v", n, ids(got), err, want)
		}
	}
	if _, err := KeepLast(1, []string{"a", "zzz"})(roots); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := KeepLast(0, []string{"a"})(roots); err == nil {
		t.Error("KeepLast(0) accepted")
	}
}

func TestVersions(t *testing.T) {
	refs := []store.Ref{{Name: "a", Version: "latest"}, {Name: "a", Version: "1"}, {Name: "b", Version: "x"}}
	got, err := Versions(refs)(roots)
	if err != nil || !slices.Equal(ids(got), []string{"a@1", "b@x"}) {
		t.Errorf("Versions = %v, %v", ids(got), err)
	}
	refs = append(refs, store.Ref{Name: "b", Version: "y"})
	if got, err := Versions(refs)(roots); !errors.Is(err, store.ErrNotFound) || got != nil {
		t.Errorf("with an unknown root: %v, %v", ids(got), err)
	}
}
