package layout

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Signing keys are ed25519 keys in a one-line text form that names what
// it holds:
//
//	spraydryfs-ed25519-secret <base64 of the 32-byte seed>
//	spraydryfs-ed25519-public <base64 of the 32-byte public key>
//
// A secret key file is the secret line; its public key is the public
// line, which --trust takes as a file or as the string itself.
const (
	SecretKeyPrefix = "spraydryfs-ed25519-secret "
	PublicKeyPrefix = "spraydryfs-ed25519-public "
)

// GenerateKey returns a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return priv, nil
}

// FormatSecretKey returns the text form of key, with a newline.
func FormatSecretKey(key ed25519.PrivateKey) string {
	return SecretKeyPrefix + base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
}

// FormatPublicKey returns the text form of key, without a newline.
func FormatPublicKey(key ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecretKey reads the text form of a secret key (surrounding white
// space allowed).
func ParseSecretKey(text string) (ed25519.PrivateKey, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, PublicKeyPrefix) {
		return nil, errors.New("this is a public key; signing needs the secret key (the file without .pub)")
	}
	seed, err := parseKeyLine(text, SecretKeyPrefix, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads the text form of a public key (surrounding white
// space allowed).
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, SecretKeyPrefix) {
		return nil, errors.New("this is a secret key; give its public key (KEYFILE.pub) instead, and keep the secret one secret")
	}
	b, err := parseKeyLine(text, PublicKeyPrefix, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

func parseKeyLine(text, prefix string, size int) ([]byte, error) {
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return nil, fmt.Errorf("not a spraydryfs key: want one line %q followed by base64", prefix)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("malformed key: want %d bytes in base64 after %q", size, prefix)
	}
	return b, nil
}
