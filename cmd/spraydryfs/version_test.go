package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	r := cli(t, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "spraydryfs ") || !strings.Contains(r.stdout, runtime.Version()) ||
		strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("--version: %+v", r)
	}
	r = cli(t, "version")
	for _, want := range []string{"spraydryfs ", runtime.Version(), "github.com/spf13/cobra v", "zombiezen.com/go/sqlite v"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("version lacks %q: %+v", want, r)
		}
	}
}
