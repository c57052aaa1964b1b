package webdav

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

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
	}{{"alice", "pw", true}, {"alice", "pw", true}, {"alice", "no", false}, {"bob", "pw", false}, {"", "", false},
		{"bob", "spraydryfs", false}} {
		if ok, err := a.Check(context.Background(), c.user, c.pw); ok != c.ok || err != nil {
			t.Errorf("Check(%q, %q) = %v, %v", c.user, c.pw, ok, err)
		}
	}
	for _, bad := range []string{"alice:{SHA}abc\n", "nocolon\n", "", "alice:$apr1$x$y\n"} {
		if _, err := ParseHtpasswd(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseHtpasswd(%q) accepted", bad)
		}
	}
}

// countingHtpasswd parses users (user → password) hashed at cost and
// counts its bcrypt comparisons, noting each hash's cost.
func countingHtpasswd(t *testing.T, cost int, users map[string]string) (*Htpasswd, *[]int) {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	a, err := ParseHtpasswd(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	costs := &[]int{}
	a.compare = func(hash, pw []byte) error {
		c, _ := bcrypt.Cost(hash)
		mu.Lock()
		*costs = append(*costs, c)
		mu.Unlock()
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	return a, costs
}

// TestHtpasswdUnknownUserCost: an unknown user costs one bcrypt at the
// file's cost, as a known user with a wrong password does, so that the
// two take the same time.
func TestHtpasswdUnknownUserCost(t *testing.T) {
	const cost = bcrypt.MinCost + 1
	a, costs := countingHtpasswd(t, cost, map[string]string{"alice": "pw"})
	for _, user := range []string{"alice", "mallory"} {
		*costs = nil
		if ok, err := a.Check(context.Background(), user, "wrong"); ok || err != nil {
			t.Fatalf("Check(%s, wrong) = %v, %v", user, ok, err)
		}
		if len(*costs) != 1 || (*costs)[0] != cost {
			t.Errorf("%s with a wrong password: bcrypt at costs %v, want [%d]", user, *costs, cost)
		}
	}
}

// TestHtpasswdVerifiedCache: credentials that passed skip bcrypt for a
// while; wrong ones never do; the cache stays within its bound.
func TestHtpasswdVerifiedCache(t *testing.T) {
	users := map[string]string{"alice": "pw", "bob": "pw2", "carol": "pw3"}
	a, costs := countingHtpasswd(t, bcrypt.MinCost, users)
	now := time.Unix(1e9, 0)
	a.now = func() time.Time { return now }
	a.maxVerified = 2
	check := func(user, pw string, want bool, bcrypts int) {
		t.Helper()
		*costs = nil
		if ok, err := a.Check(context.Background(), user, pw); ok != want || err != nil {
			t.Fatalf("Check(%s, %s) = %v, %v", user, pw, ok, err)
		}
		if len(*costs) != bcrypts {
			t.Errorf("Check(%s, %s): %d bcrypt comparisons, want %d", user, pw, len(*costs), bcrypts)
		}
	}
	check("alice", "pw", true, 1)
	check("alice", "pw", true, 0)
	check("alice", "wrong", false, 1)
	check("alice", "wrong", false, 1)
	check("alice", "pw", true, 0) // a wrong password does not evict the right one
	now = now.Add(verifiedFor)
	check("alice", "pw", true, 1) // expired
	check("bob", "pw2", true, 1)
	check("carol", "pw3", true, 1)
	if len(a.verified) > a.maxVerified {
		t.Errorf("%d verified credentials remembered, bound %d", len(a.verified), a.maxVerified)
	}
}

// TestHtpasswdSlots: at most the slots' worth of bcrypt runs at once;
// remembered credentials pass while every slot is taken, and a check that
// finds no slot in time fails with ErrAuthBusy.
func TestHtpasswdSlots(t *testing.T) {
	a, _ := countingHtpasswd(t, bcrypt.MinCost, map[string]string{"alice": "pw"})
	if ok, err := a.Check(context.Background(), "alice", "pw"); !ok || err != nil {
		t.Fatalf("Check(alice, pw) = %v, %v", ok, err)
	}
	var (
		mu          sync.Mutex
		running, hi int
	)
	release := make(chan struct{})
	a.compare = func(hash, pw []byte) error {
		mu.Lock()
		running++
		hi = max(hi, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return bcrypt.ErrMismatchedHashAndPassword
	}
	a.wait = 50 * time.Millisecond // the checks that find no slot give up
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Check(context.Background(), "alice", "wrong")
		}()
	}
	for len(a.slots) < cap(a.slots) {
		time.Sleep(time.Millisecond)
	}
	if ok, err := a.Check(context.Background(), "alice", "pw"); !ok || err != nil {
		t.Errorf("remembered credentials while every slot is taken: %v, %v", ok, err)
	}
	if _, err := a.Check(context.Background(), "alice", "other"); !errors.Is(err, ErrAuthBusy) {
		t.Errorf("a check finding no slot: %v, want ErrAuthBusy", err)
	}
	close(release)
	wg.Wait()
	if hi > cap(a.slots) {
		t.Errorf("%d bcrypt comparisons at once, bound %d", hi, cap(a.slots))
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzCleanPath: whatever a request's path is, a path cleanPath accepts
// is absolute, has no NUL byte, no "." or ".." name and no name holding a
// slash or backslash that was encoded; its names are the view path
// resolve walks, which cannot climb above the top.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b.txt", "/a%20b/", "/a/../b", "/a/%2e%2e/b", "/a%2fb", "/a%5c..%5cb", "/a/./b", "/a%00",
		"/%C3%BCn%C3%AFc.txt", "//a//b/", "/a/%2E%2E", "/..", "a/b", "/%ff%fe", "/a?b=c", "/a#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		p, ok := cleanPath(&http.Request{URL: u})
		if !ok {
			return
		}
		if p != u.Path || !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			t.Fatalf("cleanPath(%q) = %q", raw, p)
		}
		if len(strings.Split(u.EscapedPath(), "/")) != len(strings.Split(p, "/")) {
			t.Fatalf("cleanPath(%q) = %q: a name holds an encoded slash", raw, p)
		}
		parts := splitClean(p)
		for _, part := range parts {
			if part == "." || part == ".." || part == "" || strings.Contains(part, "/") {
				t.Fatalf("cleanPath(%q) = %q: name %q", raw, p, part)
			}
		}
		if strings.Contains(strings.ToLower(u.RawPath), "%5c") {
			t.Fatalf("cleanPath(%q) accepted an encoded backslash", raw)
		}
		if clean := path.Clean("/" + strings.Join(parts, "/")); clean != "/"+strings.Join(parts, "/") {
			t.Fatalf("cleanPath(%q) = %q: walks as %q", raw, p, clean)
		}
	})
}
