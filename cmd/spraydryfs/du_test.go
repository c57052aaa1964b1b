package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// duReport is du --json's output.
type duReport struct {
	Roots []struct {
		Root    string `json:"root"`
		Logical int64  `json:"logical_bytes"`
		Needed  int64  `json:"needed_bytes"`
		Shared  int64  `json:"shared_bytes"`
		Unique  int64  `json:"unique_bytes"`
	} `json:"roots"`
	Needed       int64  `json:"needed_bytes"`
	Shared       int64  `json:"shared_bytes"`
	Unique       int64  `json:"unique_bytes"`
	Unreferenced int64  `json:"unreferenced_bytes"`
	Total        int64  `json:"total_bytes"`
	Freed        *int64 `json:"freed_bytes"`
}

func du(t *testing.T, st string, args ...string) duReport {
	t.Helper()
	r := cli(t, append([]string{"-s", st, "du", "--json"}, args...)...)
	var rep duReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("du --json %v: %+v, %v", args, r, err)
	}
	return rep
}

// checkDu asserts that du's numbers add up, per root and over the store,
// and match the store's object totals from stats.
func checkDu(t *testing.T, st string) duReport {
	t.Helper()
	rep := du(t, st)
	var unique int64
	for _, r := range rep.Roots {
		if r.Shared+r.Unique != r.Needed || r.Shared < 0 || r.Unique < 0 {
			t.Errorf("%s: shared %d + unique %d != needed %d", r.Root, r.Shared, r.Unique, r.Needed)
		}
		unique += r.Unique
	}
	if unique != rep.Unique || rep.Unique+rep.Shared != rep.Needed || rep.Needed+rep.Unreferenced != rep.Total {
		t.Errorf("du totals do not add up: %+v (roots' unique %d)", rep, unique)
	}
	var stats struct {
		Store map[string]int64 `json:"store"`
	}
	r := cli(t, "-s", st, "stats", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &stats); err != nil {
		t.Fatal(err)
	}
	if objects := stats.Store["chunk_stored"] + stats.Store["dir_bytes"] + stats.Store["chunk_list_bytes"]; objects != rep.Total {
		t.Errorf("du total %d, stats: %d bytes of chunks, listings and chunk lists", rep.Total, objects)
	}
	return rep
}

func TestDuAddsUp(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "s.sdfs")
	src := filepath.Join(dir, "src")
	big := noise(600<<10, 1)
	writeFiles(t, src, map[string][]byte{"big": big, "small": []byte("small"), "d/x": noise(3000, 2)})
	ingest := func(id string) {
		t.Helper()
		if r := cli(t, "-s", st, "ingest", id, src); r.code != 0 {
			t.Fatalf("ingest %s: %+v", id, r)
		}
	}
	ingest("a@1")
	// a@2 changes the big file a little: its new chunks are deltas
	// against a@1's, which a@2 then needs too.
	big2 := append([]byte{}, big...)
	copy(big2[300<<10:], "a few changed bytes")
	writeFiles(t, src, map[string][]byte{"big": big2, "new": noise(5000, 3)})
	ingest("a@2")
	ingest("b@1") // the same tree as a@2: everything shared
	var stats struct {
		Store map[string]int64 `json:"store"`
	}
	if err := json.Unmarshal([]byte(cli(t, "-s", st, "stats", "--json").stdout), &stats); err != nil || stats.Store["delta_chunks"] == 0 {
		t.Fatalf("no delta chunks to count (%v): %v", err, stats.Store)
	}
	rep := checkDu(t, st)
	if len(rep.Roots) != 3 || rep.Unreferenced != 0 || rep.Freed != nil {
		t.Fatalf("du: %+v", rep)
	}
	a1, a2, b1 := rep.Roots[0], rep.Roots[1], rep.Roots[2]
	if a2.Unique != 0 || b1.Unique != 0 || a2.Needed != b1.Needed || a2.Shared != a2.Needed {
		t.Errorf("a@2 and b@1 are one tree: %+v, %+v", a2, b1)
	}
	if a1.Unique <= 0 || a1.Shared <= 0 {
		t.Errorf("a@1 shares some chunks and holds some alone: %+v", a1)
	}

	// A selection: what removing it frees.
	sel := du(t, st, "a")
	if len(sel.Roots) != 2 || sel.Freed == nil || *sel.Freed != a1.Unique {
		t.Errorf("du a: %+v; want a@1 and a@2, freeing a@1's unique %d", sel, a1.Unique)
	}
	sel = du(t, st, "a@latest", "b@1")
	// Everything a@2 and b@1 need but a@1 does not (a@1 shares only with them).
	if len(sel.Roots) != 2 || *sel.Freed != a2.Needed-a1.Shared {
		t.Errorf("du a@latest b@1: %+v; want freed %d", sel, a2.Needed-a1.Shared)
	}
	// roots --json carries the same numbers.
	var roots []map[string]any
	r := cli(t, "-s", st, "roots", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &roots); err != nil || len(roots) != 3 {
		t.Fatalf("roots --json: %+v, %v", r, err)
	}
	for i, x := range roots {
		if int64(x["unique_bytes"].(float64)) != rep.Roots[i].Unique || int64(x["shared_bytes"].(float64)) != rep.Roots[i].Shared ||
			int64(x["needed_bytes"].(float64)) != rep.Roots[i].Needed {
			t.Errorf("roots --json %v, du %+v", x, rep.Roots[i])
		}
	}
	wantFail(t, cli(t, "-s", st, "du", "zzz"), 1, "not found")
	wantFail(t, cli(t, "-s", st, "du", "a@9"), 1, "not found")
	wantFail(t, cli(t, "-s", st, "du", "a@1/big"), 2, "not paths")
}
