package webdav

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Bounds of the bcrypt work Htpasswd does.
const (
	// verifiedFor is how long a verified user and password are taken
	// without bcrypt.
	verifiedFor = time.Minute
	// maxVerified bounds the verified credentials remembered.
	maxVerified = 1024
	// authWait is how long a check waits for a bcrypt slot before giving
	// up with ErrAuthBusy.
	authWait = 5 * time.Second
)

// ErrAuthBusy is Check's error when every bcrypt slot stayed taken (a
// flood of wrong passwords) for as long as a check waits.
var ErrAuthBusy = errors.New("too many password checks at once")

// Htpasswd holds the users of an htpasswd file with bcrypt hashes
// (htpasswd -B). It is safe for concurrent use.
//
// bcrypt is slow on purpose, so its work is bounded: a user and password
// that passed are remembered for a minute (by an HMAC under a key made at
// start, never the password), so that clients sending credentials with
// every request pay bcrypt about once a minute; and at most half the CPUs
// run bcrypt at once, so that a flood of wrong passwords queues up instead
// of starving requests with remembered credentials. An unknown user is
// checked against a dummy hash of the highest cost in the file, so it
// takes as long as a known user with a wrong password.
type Htpasswd struct {
	users map[string][]byte // user → bcrypt hash
	cost  int               // highest bcrypt cost of the entries
	dummy func() []byte     // hash for unknown users, at cost
	key   [32]byte          // HMAC key of the verified cache

	slots chan struct{} // bcrypt verifications in progress

	mu       sync.Mutex
	verified map[[sha256.Size]byte]time.Time // HMAC of user and password → when it passed

	// For tests: the clock, the bcrypt comparison, the bounds.
	now         func() time.Time
	compare     func(hash, password []byte) error
	maxVerified int
	wait        time.Duration
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
	h := &Htpasswd{users: map[string][]byte{}, verified: map[[sha256.Size]byte]time.Time{},
		slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		now:   time.Now, compare: bcrypt.CompareHashAndPassword, maxVerified: maxVerified, wait: authWait}
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
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): not a bcrypt hash (make it with htpasswd -B): %w", line, user, err)
		}
		h.users[user] = []byte(hash)
		h.cost = max(h.cost, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(h.users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	if _, err := rand.Read(h.key[:]); err != nil {
		return nil, fmt.Errorf("htpasswd: cache key: %w", err)
	}
	// Made on first use: at cost 14 this takes a second.
	h.dummy = sync.OnceValue(func() []byte {
		d, _ := bcrypt.GenerateFromPassword([]byte("spraydryfs"), h.cost)
		return d
	})
	return h, nil
}

// Check reports whether user and password match an entry. It fails with
// ErrAuthBusy if no bcrypt slot came free in time, or with ctx's error.
func (h *Htpasswd) Check(ctx context.Context, user, password string) (bool, error) {
	mac := hmac.New(sha256.New, h.key[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var id [sha256.Size]byte
	mac.Sum(id[:0])
	now := h.now()
	h.mu.Lock()
	at, seen := h.verified[id]
	h.mu.Unlock()
	if seen && now.Sub(at) < verifiedFor {
		return true, nil
	}
	hash, found := h.users[user]
	if !found {
		hash = h.dummy() // the same time as a wrong password
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	ok := h.compare(hash, []byte(password)) == nil && found
	<-h.slots
	if ok {
		h.remember(id, now)
	}
	return ok, nil
}

// acquire takes a bcrypt slot, waiting up to h.wait.
func (h *Htpasswd) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrAuthBusy
	}
}

// remember keeps id as verified at now, dropping expired entries (and, if
// it is still full, any one) to stay within the bound.
func (h *Htpasswd) remember(id [sha256.Size]byte, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.verified) >= h.maxVerified {
		for k, at := range h.verified {
			if now.Sub(at) >= verifiedFor {
				delete(h.verified, k)
			}
		}
		for k := range h.verified {
			if len(h.verified) < h.maxVerified {
				break
			}
			delete(h.verified, k)
		}
	}
	h.verified[id] = now
}
