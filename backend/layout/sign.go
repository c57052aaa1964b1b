package layout

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spraydryfs/spraydryfs/backend/store"
)

// ErrUntrusted reports an index that trusted keys were given for and that
// is unsigned or signed by another key.
var ErrUntrusted = errors.New("untrusted roots index")

// Index is a decoded roots index.
type Index struct {
	Roots []store.Root
	// Published is when a signed index was signed (zero if unsigned).
	// Each signing publisher makes it later than the index it replaces.
	Published time.Time
	// Signer is the key whose signature verified (nil if unsigned).
	Signer ed25519.PublicKey
}

// signatureContext is prefixed to the signed bytes, so that a signature
// of an index is never one of anything else made with the same key.
const signatureContext = "spraydryfs-layout index signature v2\x00"

type signedJSON struct {
	Published string      `json:"published"`
	Roots     []indexRoot `json:"roots"`
}

type signedIndexJSON struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	Signed    json.RawMessage `json:"signed"`
	Key       string          `json:"key"`
	Signature string          `json:"signature"`
}

// SignIndex returns the index of roots (sorted as EncodeIndex sorts them)
// published at published, signed with key. The signature covers the
// exact bytes of the "signed" member after a context string; the rest of
// the file has one fixed form, which readers demand byte for byte, so no
// byte of a signed index can change unnoticed.
func SignIndex(roots []store.Root, published time.Time, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("index: not an ed25519 secret key")
	}
	rs, err := encodeRoots(roots)
	if err != nil {
		return nil, err
	}
	signed, err := json.MarshalIndent(signedJSON{Published: published.UTC().Format(time.RFC3339Nano), Roots: rs}, " ", " ")
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	sig := ed25519.Sign(key, signedMessage(signed))
	pub := key.Public().(ed25519.PublicKey)
	return signedFrame(signed, base64.StdEncoding.EncodeToString(pub), base64.StdEncoding.EncodeToString(sig)), nil
}

func signedMessage(signed []byte) []byte {
	return append([]byte(signatureContext), signed...)
}

// signedFrame is the one form of a signed index around its signed bytes.
func signedFrame(signed []byte, key, sig string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n \"format\": %q,\n \"version\": %d,\n \"signed\": ", indexFormat, signedVersion)
	b.Write(signed)
	fmt.Fprintf(&b, ",\n \"key\": %q,\n \"signature\": %q\n}\n", key, sig)
	return b.Bytes()
}

// decodeSigned decodes and verifies an index of version 2.
func decodeSigned(b []byte) (Index, error) {
	var x signedIndexJSON
	if err := decodeStrict(b, &x); err != nil {
		return Index{}, err
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(x.Key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Index{}, badIndex("malformed key")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(x.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Index{}, badIndex("malformed signature")
	}
	// Key and signature are plain base64 now, so the frame is the one
	// SignIndex writes exactly when b is.
	if !bytes.Equal(b, signedFrame(x.Signed, x.Key, x.Signature)) {
		return Index{}, badIndex("a signed index must be exactly as spraydryfs writes it (altered outside the signed part)")
	}
	if !ed25519.Verify(pub, signedMessage(x.Signed), sig) {
		return Index{}, badIndex("signature does not verify (the index was altered, or not signed by the key it names)")
	}
	var s signedJSON
	if err := decodeStrict(x.Signed, &s); err != nil {
		return Index{}, err
	}
	published, err := time.Parse(time.RFC3339Nano, s.Published)
	if err != nil {
		return Index{}, badIndex("published: %v", err)
	}
	roots, err := decodeRoots(s.Roots)
	if err != nil {
		return Index{}, err
	}
	return Index{Roots: roots, Published: published, Signer: ed25519.PublicKey(pub)}, nil
}

// trusted checks that x is signed by one of keys.
func (x Index) trusted(keys []ed25519.PublicKey) error {
	if x.Signer == nil {
		return fmt.Errorf("%w: it is not signed, and trusted keys were given", ErrUntrusted)
	}
	if !x.SignedBy(keys) {
		return fmt.Errorf("%w: signed by %s, which is not a trusted key", ErrUntrusted, FormatPublicKey(x.Signer))
	}
	return nil
}

// SignedBy reports whether x is signed by one of keys.
func (x Index) SignedBy(keys []ed25519.PublicKey) bool {
	return x.Signer != nil && slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return x.Signer.Equal(k) })
}
