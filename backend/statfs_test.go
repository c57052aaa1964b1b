package backend_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/spraydryfs/spraydryfs/backend"
)

func TestTopDirectoryAndStatfs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"f": []byte("one"), "d/g": []byte("two")}, nil)
	ingestDir(t, s, "alpha@1", src)
	ingestDir(t, s, "alpha@2", src)
	ingestDir(t, s, "beta@1", src)
	alpha := ingestDir(t, s, "alpha@3", filepath.Join(src, "d"))

	ns := backend.OpenNamespace(s.Objects)
	if top := ns.Root(); top.MTime != alpha.Root.Created.UnixNano() || top.Nlink != 4 {
		t.Errorf("namespace top: mtime %d, nlink %d; want the newest root's created time and 2+2 names", top.MTime, top.Nlink)
	}
	nv, err := backend.OpenName(ctx, s.Objects, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if top := nv.Root(); top.MTime != alpha.Root.Created.UnixNano() || top.Nlink != 5 {
		t.Errorf("name top: mtime %d, nlink %d; want alpha@3's created time and 2+3 versions", top.MTime, top.Nlink)
	}

	for name, v := range map[string]*backend.View{"namespace": ns, "name": nv, "root": openRoot(t, s, "alpha@1")} {
		st, err := v.Statfs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{"namespace": 7, "name": 5, "root": 2}[name]
		// df: used = blocks - free, use% = used / (used + avail).
		used := st.Blocks - st.Free
		if st.Free != 0 || st.Blocks == 0 || st.Avail == 0 || used >= used+st.Avail || st.Files-st.FreeFiles != want || st.FreeFiles == 0 {
			t.Errorf("%s statfs %+v: want no free blocks, the store's size, room on its disk and %d files", name, st, want)
		}
	}
}
