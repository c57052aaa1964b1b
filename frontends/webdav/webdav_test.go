package webdav

import (
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestCleanPath(t *testing.T) {
	for raw, want := range map[string]bool{
		"/a/b.txt":            true,
		"/a%20b/":             true,
		"/a/../b":             false,
		"/a/%2e%2e/b":         false,
		"/a%2fb":              false,
		"/a%5c..%5cb":         false,
		"/a/./b":              false,
		"/a%00":               false,
		"/%C3%BCn%C3%AFc.txt": true,
	} {
		r := httptest.NewRequest("GET", "http://x"+raw, nil)
		if _, ok := cleanPath(r); ok != want {
			t.Errorf("cleanPath(%q) = %v, want %v", raw, ok, want)
		}
	}
}

func TestIsProbe(t *testing.T) {
	for p, want := range map[string]bool{
		"/a/._x": true, "/.DS_Store": true, "/v/.metadata_never_index": true, "/.ql_disablethumbnails": true,
		"/a/x": false, "/a/_x": false, "/DS_Store": false,
	} {
		if isProbe(p) != want {
			t.Errorf("isProbe(%q) = %v", p, !want)
		}
	}
}

func TestExplicitProps(t *testing.T) {
	for _, body := range []string{"", `<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>`} {
		out, err := explicitProps([]byte(body))
		if err != nil || !strings.Contains(string(out), "<D:supportedlock/>") || strings.Contains(string(out), "allprop") {
			t.Errorf("explicitProps(%q) = %s, %v", body, out, err)
		}
	}
	named := `<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>`
	if out, err := explicitProps([]byte(named)); err != nil || string(out) != named {
		t.Errorf("a named-property body changed: %s, %v", out, err)
	}
	if _, err := explicitProps([]byte("<propfind")); err == nil {
		t.Error("a broken body was accepted")
	}
}

func TestHtpasswd(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	a, err := ParseHtpasswd(strings.NewReader("# comment\n\nalice:" + string(h) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "pw", true}, {"alice", "pw", true}, {"alice", "no", false}, {"bob", "pw", false}, {"", "", false}} {
		if a.Check(c.user, c.pw) != c.ok {
			t.Errorf("Check(%q, %q) = %v", c.user, c.pw, !c.ok)
		}
	}
	for _, bad := range []string{"alice:{SHA}abc\n", "nocolon\n", "", "alice:$apr1$x$y\n"} {
		if _, err := ParseHtpasswd(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseHtpasswd(%q) accepted", bad)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
