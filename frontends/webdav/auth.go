package webdav

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd holds the users of an htpasswd file with bcrypt hashes
// (htpasswd -B). Checked passwords are remembered (as SHA-256 digests) so
// that bcrypt's deliberate slowness is paid once per user, not per
// request. It is safe for concurrent use.
type Htpasswd struct {
	users map[string][]byte // user → bcrypt hash

	mu sync.Mutex
	ok map[string][sha256.Size]byte // user → digest of a password that passed
}

// LoadHtpasswd reads an htpasswd file: "user:hash" lines, blank lines and
// # comments ignored; every hash must be bcrypt ($2a$, $2b$ or $2y$).
func LoadHtpasswd(path string) (*Htpasswd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	h, err := ParseHtpasswd(f)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// ParseHtpasswd reads htpasswd lines from r (see LoadHtpasswd).
func ParseHtpasswd(r io.Reader) (*Htpasswd, error) {
	h := &Htpasswd{users: map[string][]byte{}, ok: map[string][sha256.Size]byte{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		user, hash, found := strings.Cut(l, ":")
		if !found || user == "" {
			return nil, fmt.Errorf("line %d: want user:hash", line)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d (%s): not a bcrypt hash (make it with htpasswd -B): %w", line, user, err)
		}
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(h.users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return h, nil
}

// Check reports whether user and password match an entry.
func (h *Htpasswd) Check(user, password string) bool {
	hash, found := h.users[user]
	digest := sha256.Sum256([]byte(password))
	h.mu.Lock()
	known, seen := h.ok[user]
	h.mu.Unlock()
	if seen && subtle.ConstantTimeCompare(known[:], digest[:]) == 1 {
		return true
	}
	if !found {
		// Spend the same time as a wrong password would.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	h.mu.Lock()
	h.ok[user] = digest
	h.mu.Unlock()
	return true
}

// dummyHash is a bcrypt hash of nothing in particular, for unknown users;
// made on first use.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("spraydryfs"), bcrypt.DefaultCost)
	return h
})
