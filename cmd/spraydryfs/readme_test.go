package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEMatchesTheBuild checks README claims a new user trips over when
// they are wrong: the Go version go.mod needs, rclone connection strings
// that Debian's rclone can parse, and where davfs2's settings go.
func TestREADMEMatchesTheBuild(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "Go " + string(goVersion[1]) + "+"; !strings.Contains(string(readme), want) {
		t.Errorf("README does not say %q, which go.mod needs", want)
	}
	// rclone splits an unquoted URL in a connection string at its colons.
	if m := regexp.MustCompile(`:webdav,url=[^"]`).Find(readme); m != nil {
		t.Errorf("README has an unquoted rclone connection string: %s", m)
	}
	for _, want := range []string{"conf=FILE", "ask_auth 0", "most recently created"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README does not mention %q", want)
		}
	}
}
