// Package token defines the bearer token form "<id>:<secret>" (the shape of
// Rancher kube-api-auth tokens): generating ids and secrets, parsing strictly
// before any hashing, and the salted hash stored in place of the secret.
//
// Secrets carry 256 bits from crypto/rand, so a single salted SHA-256 is the
// right stored form: there is nothing to brute-force that a slow KDF would
// protect, and verification stays a sub-microsecond hash. Comparison is
// constant time. Every function is safe for concurrent use.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
)

const (
	// IDPrefix starts every generated token id.
	IDPrefix = "token-"
	// SaltBytes is the per-token salt length.
	SaltBytes = 16
	// MaxBearerLen bounds a bearer token; longer input is malformed.
	MaxBearerLen = 512

	idTimeBytes   = 6  // milliseconds since 1970, big endian: good until the year 10889
	idRandomBytes = 10 // 80 bits: ids are public, uniqueness is what matters
	secretBytes   = 32 // 256 bits
	maxIDLen      = 253
	minSecretLen  = 32
	maxSecretLen  = 128
)

// enc is lowercase base32 without padding: URL-, header- and shell-safe.
var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idEnc is base32 over the same characters in ASCII order, so encoded ids
// sort as their bytes do.
var idEnc = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// NewID returns a fresh token id made at now: "token-" and 26 characters
// holding the time in milliseconds followed by 80 random bits.
//
// Why the time: ids made later sort later, so new tokens are appended at
// the end of the state database's B-tree (keyed by id) instead of landing
// on a random leaf page each. A batch of creates then dirties a few pages
// rather than one per token, which is most of what a create costs the
// database (docs/BENCHMARKS.md, "Issue 9, fourth pass"). Uniqueness rests
// on the random bits alone; the time is not secret (a token's creation
// time is in its record) and nothing trusts it. Ids of older formats stay
// valid: an id is opaque once made.
func NewID(now time.Time) (string, error) {
	var b [idTimeBytes + idRandomBytes]byte
	ms := uint64(max(now.UnixMilli(), 0))
	for i := idTimeBytes - 1; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[idTimeBytes:]); err != nil {
		return "", fmt.Errorf("generate token id: %w", err)
	}
	return IDPrefix + idEnc.EncodeToString(b[:]), nil
}

// NewSecret returns a fresh secret of 256 random bits.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token secret: %w", err)
	}
	return enc.EncodeToString(b), nil
}

// NewSalt returns a fresh salt.
func NewSalt() ([]byte, error) {
	b := make([]byte, SaltBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate salt: %w", err)
	}
	return b, nil
}

// Bearer joins an id and a secret into the bearer token form.
func Bearer(id, secret string) string { return id + ":" + secret }

// Parse splits a bearer token into id and secret. It accepts only the token
// form: an id of lowercase letters, digits, '-' and '.' (a Kubernetes object
// name), one ':', and a secret of 32 to 128 ASCII letters and digits.
// Anything else is malformed and must be refused before any lookup or hash.
func Parse(bearer string) (id, secret string, ok bool) {
	if len(bearer) > MaxBearerLen {
		return "", "", false
	}
	id, secret, ok = strings.Cut(bearer, ":")
	if !ok || !ValidID(id) || len(secret) < minSecretLen || len(secret) > maxSecretLen {
		return "", "", false
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	return id, secret, true
}

// ValidID reports whether id has the form of a token id.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Hash returns SHA-256(salt || secret). It does not allocate.
func Hash(salt []byte, secret string) [sha256.Size]byte {
	var buf [SaltBytes + maxSecretLen]byte
	if len(salt)+len(secret) > len(buf) {
		h := sha256.New()
		h.Write(salt)
		h.Write([]byte(secret))
		var out [sha256.Size]byte
		copy(out[:], h.Sum(nil))
		return out
	}
	n := copy(buf[:], salt)
	n += copy(buf[n:], secret)
	return sha256.Sum256(buf[:n])
}

// Matches reports, in constant time, whether secret hashes to want under salt.
func Matches(salt []byte, secret string, want []byte) bool {
	got := Hash(salt, secret)
	return subtle.ConstantTimeCompare(got[:], want) == 1
}
