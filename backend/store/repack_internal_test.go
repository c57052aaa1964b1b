package store

import "testing"

// TestRepackCopyCoversRepackTables: every table gc asks Repack to rebuild
// has a copy statement, and no other.
func TestRepackCopyCoversRepackTables(t *testing.T) {
	if len(repackCopy) != len(RepackTables) {
		t.Fatalf("repackCopy has %d tables, RepackTables %d", len(repackCopy), len(RepackTables))
	}
	for _, tb := range RepackTables {
		if _, ok := repackCopy[tb]; !ok {
			t.Errorf("no copy statement for %s", tb)
		}
	}
}
