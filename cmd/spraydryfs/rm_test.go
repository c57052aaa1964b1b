package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// rootIDs lists the store's roots as roots prints them.
func rootIDs(t *testing.T, st string) []string {
	t.Helper()
	r := cli(t, "-s", st, "roots")
	if r.code != 0 {
		t.Fatalf("roots: %+v", r)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		ids = append(ids, strings.Fields(line)[0])
	}
	return ids
}

// indexGens returns the generations of name's reuse-index rows.
func indexGens(t *testing.T, st, name string) []int64 {
	t.Helper()
	c, err := sqlite.OpenConn(st, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var gens []int64
	err = sqlitex.Execute(c, `SELECT DISTINCT gen FROM ingest_index WHERE name = ? ORDER BY gen`, &sqlitex.ExecOptions{Args: []any{name},
		ResultFunc: func(st *sqlite.Stmt) error { gens = append(gens, st.ColumnInt64(0)); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return gens
}

func TestRmAtomicKeepLastDryRun(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	big := noise(500<<10, 7)
	ingest := func(id string, i int) result {
		t.Helper()
		// Each version changes the big file a little (delta chunks against
		// the previous version's) and adds a file of its own.
		copy(big[i*1000:], fmt.Sprintf("version %d", i))
		writeFiles(t, src, map[string][]byte{"big": big, fmt.Sprintf("only-%d", i): noise(4000, uint64(i)), "same": []byte("same")})
		r := cli(t, "-s", st, "ingest", id, src)
		if r.code != 0 {
			t.Fatalf("ingest %s: %+v", id, r)
		}
		return r
	}
	for i := 1; i <= 5; i++ {
		ingest(fmt.Sprintf("a@%d", i), i)
	}
	ingest("b@1", 9)
	all := []string{"a@1", "a@2", "a@3", "a@4", "a@5", "b@1"}
	before := checkDu(t, st)

	// All or nothing: one unknown root and nothing goes.
	wantFail(t, cli(t, "-s", st, "rm", "a@1", "zzz@1"), 1, "root zzz@1: not found")
	wantFail(t, cli(t, "-s", st, "rm", "a@1", "a@9"), 1, "root a@9: not found")
	wantFail(t, cli(t, "-s", st, "rm", "--keep-last", "1", "a", "zzz"), 1, "not found")
	if ids := rootIDs(t, st); !slices.Equal(ids, all) {
		t.Fatalf("after failed rm: %v", ids)
	}
	// Usage errors.
	wantFail(t, cli(t, "-s", st, "rm"), 2, "requires at least 1 arg")
	wantFail(t, cli(t, "-s", st, "rm", "a"), 2, "want NAME@VERSION")
	wantFail(t, cli(t, "-s", st, "rm", "a@1/big"), 2, "not paths")
	wantFail(t, cli(t, "-s", st, "rm", "--keep-last", "0", "a"), 2, "keep at least 1")
	wantFail(t, cli(t, "-s", st, "rm", "--keep-last", "2", "a@1"), 2, "root names")
	wantFail(t, cli(t, "-s", filepath.Join(dir, "none"), "rm", "a@1"), 1, "does not exist")

	// --dry-run shows what would go and what gc would free, and keeps it.
	r := cli(t, "-s", st, "rm", "--dry-run", "a@1", "a@1", "a@2")
	if r.code != 0 || !strings.Contains(r.stdout, "would remove a@1\nwould remove a@2\nwould remove 2 roots") {
		t.Errorf("rm --dry-run: %+v", r)
	}
	dry := cli(t, "-s", st, "rm", "-n", "a@1")
	wantFree := fmt.Sprintf("frees %s", size(before.Roots[0].Unique))
	if !strings.Contains(dry.stdout, wantFree) {
		t.Errorf("rm -n a@1: %q; want %q (a@1's unique bytes)", dry.stdout, wantFree)
	}
	if ids := rootIDs(t, st); !slices.Equal(ids, all) {
		t.Fatalf("after --dry-run: %v", ids)
	}

	// rm a@1: its unique bytes become unreferenced; a@2, whose delta
	// chunks reference a@1's, still needs the same bytes.
	r = cli(t, "-s", st, "rm", "a@1")
	if r.code != 0 || r.stdout != "removed 1 root: a@1; run `spraydryfs gc` to free their space\n" {
		t.Errorf("rm a@1: %+v", r)
	}
	after := checkDu(t, st)
	if after.Unreferenced != before.Roots[0].Unique || after.Roots[0].Root != "a@2" || after.Roots[0].Needed != before.Roots[1].Needed {
		t.Errorf("after rm a@1: unreferenced %d (a@1 held %d alone), a@2 %+v (was %+v)",
			after.Unreferenced, before.Roots[0].Unique, after.Roots[0], before.Roots[1])
	}
	if before.Roots[1].Needed-before.Roots[1].Unique == 0 {
		t.Errorf("a@2 shares nothing with a@1: no delta chains tested")
	}
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 {
		t.Errorf("check after rm: %+v", r)
	}

	// --keep-last: the two newest of a stay; b is untouched.
	r = cli(t, "-s", st, "rm", "--dry-run", "--keep-last", "2", "a")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "would remove a@2\nwould remove a@3\nwould remove 2 roots") {
		t.Errorf("rm --dry-run --keep-last 2 a: %+v", r)
	}
	gens := indexGens(t, st, "a")
	r = cli(t, "-s", st, "rm", "--keep-last", "2", "a", "a")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "removed 2 roots: a@2 a@3;") {
		t.Errorf("rm --keep-last 2 a: %+v", r)
	}
	if ids := rootIDs(t, st); !slices.Equal(ids, []string{"a@4", "a@5", "b@1"}) {
		t.Errorf("after --keep-last 2: %v", ids)
	}
	if r := cli(t, "-s", st, "rm", "--keep-last", "2", "a"); r.code != 0 || r.stdout != "nothing to remove\n" {
		t.Errorf("rm --keep-last again: %+v", r)
	}
	// The newest version's reuse index stays, so reuse keeps working.
	if g := indexGens(t, st, "a"); len(gens) != 1 || !slices.Equal(g, gens) {
		t.Errorf("reuse index generations %v, were %v", g, gens)
	}
	r = cli(t, "-s", st, "ingest", "a@6", src)
	// Since a@5, b@1's ingest rewrote big and same and added only-9: the
	// other five files are reused unread.
	if r.code != 0 || !strings.Contains(r.stdout, "8 files, 523.4 KiB logical, 3 files read") {
		t.Errorf("ingest after rm: %+v", r)
	}
	// Removing the newest takes its index; ingest then reads everything.
	if r := cli(t, "-s", st, "rm", "a@latest"); r.code != 0 || !strings.Contains(r.stdout, "a@6") {
		t.Errorf("rm a@latest: %+v", r)
	}
	if g := indexGens(t, st, "a"); len(g) != 0 {
		t.Errorf("reuse index of removed a@6 left: %v", g)
	}
	if r := cli(t, "-s", st, "ingest", "a@7", src); r.code != 0 || !strings.Contains(r.stdout, "8 files read") {
		t.Errorf("ingest after rm of the newest: %+v", r)
	}
	checkDu(t, st)
	if r := cli(t, "-s", st, "check", "--read-data"); r.code != 0 || !bytes.Contains([]byte(r.stdout), []byte("OK")) {
		t.Errorf("check at the end: %+v", r)
	}
}
