// Package rancher reads what Rancher writes for downstream-cluster token
// authentication (kube-api-auth): the hashes of ClusterAuthToken secrets
// and the ClusterAuthToken, ClusterUserAttribute and Secret objects an
// import reads.
//
// Hash formats, as Rancher's pkg/auth/tokens/hashers write them (the
// number after '$' is the format version; salts and keys are random bytes):
//
//	$1:<salt hex>:<log2 N>:<r>:<p>:<key>     scrypt, Rancher writes N=2^15, r=8, p=1, 8-byte salt, 64-byte key
//	$2:<salt>:<key>                          SHA-256(salt || secret), 8-byte salt
//	$3:1:<salt>:<key>                        SHA3-512(salt || secret), 8-byte salt ("1" is the SHA3-512 variation)
//
// where <key> (and <salt> in $2 and $3) are unpadded standard base64. The
// secret hashed is the part after ':' of a "<name>:<secret>" token.
//
// A Hash is immutable and safe for concurrent use. Verify of a scrypt hash
// takes tens of milliseconds and 32 MiB by design; callers that verify
// repeatedly should remember successes (server/state does).
package rancher

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// Format is a Rancher hash format; its value is the version Rancher writes
// after '$'.
type Format uint8

// The formats Rancher's hashers write.
const (
	FormatScrypt Format = 1
	FormatSHA256 Format = 2
	FormatSHA3   Format = 3
)

func (f Format) String() string {
	switch f {
	case FormatScrypt:
		return "scrypt"
	case FormatSHA256:
		return "sha256"
	case FormatSHA3:
		return "sha3-512"
	}
	return "format " + strconv.Itoa(int(f))
}

// Parameters Rancher writes, and the bounds this package accepts when
// reading: a hash is data from an import file, and verifying it must not be
// able to take unbounded memory or time.
const (
	scryptLogN   = 15
	scryptR      = 8
	scryptP      = 1
	scryptKeyLen = 64
	saltLen      = 8

	maxScryptMem  = 64 << 20 // 128 * r * N bytes
	maxScryptP    = 4
	minKeyLen     = 16
	maxKeyLen     = 128
	maxSaltLen    = 64
	sha3Variation = 1
)

// MaxHashLen bounds a hash string.
const MaxHashLen = 512

// Hash is a parsed Rancher hash.
type Hash struct {
	format  Format
	salt    []byte
	key     []byte
	logN    int
	r, p    int
	encoded string
}

// Format is the hash's format.
func (h *Hash) Format() Format { return h.format }

// String is the hash as Rancher wrote it.
func (h *Hash) String() string { return h.encoded }

// Slow reports whether Verify is deliberately expensive (scrypt).
func (h *Hash) Slow() bool { return h.format == FormatScrypt }

var errFormat = errors.New("not a Rancher token hash ($1 scrypt, $2 SHA-256 or $3 SHA3-512)")

// ParseHash parses a hash in any of the formats. Its errors never repeat
// the hash.
func ParseHash(s string) (*Hash, error) {
	if len(s) > MaxHashLen {
		return nil, fmt.Errorf("hash longer than %d bytes", MaxHashLen)
	}
	rest, ok := strings.CutPrefix(s, "$")
	if !ok {
		return nil, errFormat
	}
	version, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, errFormat
	}
	h := &Hash{encoded: s}
	var err error
	switch version {
	case "1":
		h.format = FormatScrypt
		err = h.parseScrypt(rest)
	case "2":
		h.format = FormatSHA256
		err = h.parseSalted(rest, sha256.Size)
	case "3":
		h.format = FormatSHA3
		variation, salted, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("%s hash: want $3:1:<salt>:<key>", h.format)
		}
		if variation != strconv.Itoa(sha3Variation) {
			return nil, fmt.Errorf("%s hash: unknown variation (only 1, SHA3-512, exists)", h.format)
		}
		err = h.parseSalted(salted, 64)
	default:
		return nil, fmt.Errorf("unknown Rancher hash version (known: 1 scrypt, 2 SHA-256, 3 SHA3-512)")
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hash) parseScrypt(rest string) error {
	parts := strings.Split(rest, ":")
	if len(parts) != 5 {
		return fmt.Errorf("%s hash: want $1:<salt hex>:<log2 N>:<r>:<p>:<key>", h.format)
	}
	salt, err := hex.DecodeString(parts[0])
	if err != nil || len(salt) == 0 || len(salt) > maxSaltLen {
		return fmt.Errorf("%s hash: salt is not 1 to %d hex-encoded bytes", h.format, maxSaltLen)
	}
	var nums [3]int
	for i, p := range parts[1:4] {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return fmt.Errorf("%s hash: N, r and p must be positive integers", h.format)
		}
		nums[i] = n
	}
	logN, r, p := nums[0], nums[1], nums[2]
	if logN > 24 || r > maxScryptMem/128 || 128*r<<logN > maxScryptMem || p > maxScryptP {
		return fmt.Errorf("%s hash: parameters need more than %d MiB or p > %d; Rancher writes N=2^%d, r=%d, p=%d",
			h.format, maxScryptMem>>20, maxScryptP, scryptLogN, scryptR, scryptP)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return fmt.Errorf("%s hash: key is not %d to %d bytes of unpadded base64", h.format, minKeyLen, maxKeyLen)
	}
	h.salt, h.key, h.logN, h.r, h.p = salt, key, logN, r, p
	return nil
}

func (h *Hash) parseSalted(rest string, keyLen int) error {
	salt64, key64, ok := strings.Cut(rest, ":")
	if !ok {
		return fmt.Errorf("%s hash: want <salt>:<key>", h.format)
	}
	salt, err := base64.RawStdEncoding.DecodeString(salt64)
	if err != nil || len(salt) > maxSaltLen {
		return fmt.Errorf("%s hash: salt is not at most %d bytes of unpadded base64", h.format, maxSaltLen)
	}
	key, err := base64.RawStdEncoding.DecodeString(key64)
	if err != nil || len(key) != keyLen {
		return fmt.Errorf("%s hash: key is not %d bytes of unpadded base64", h.format, keyLen)
	}
	h.salt, h.key = salt, key
	return nil
}

// Verify reports, comparing in constant time, whether secret hashes to h.
func (h *Hash) Verify(secret string) bool {
	var got []byte
	switch h.format {
	case FormatScrypt:
		k, err := scrypt.Key([]byte(secret), h.salt, 1<<h.logN, h.r, h.p, len(h.key))
		if err != nil {
			return false
		}
		got = k
	case FormatSHA256:
		sum := sha256.Sum256(salted(h.salt, secret))
		got = sum[:]
	case FormatSHA3:
		sum := sha3.Sum512(salted(h.salt, secret))
		got = sum[:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

func salted(salt []byte, secret string) []byte {
	b := make([]byte, 0, len(salt)+len(secret))
	return append(append(b, salt...), secret...)
}

// NewHash hashes secret in format f with a fresh random salt and the
// parameters Rancher uses, returning the hash as Rancher writes it.
func NewHash(f Format, secret string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generate salt: %w", err)
	}
	switch f {
	case FormatScrypt:
		key, err := scrypt.Key([]byte(secret), salt, 1<<scryptLogN, scryptR, scryptP, scryptKeyLen)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("$%d:%x:%d:%d:%d:%s", FormatScrypt, salt, scryptLogN, scryptR, scryptP, base64.RawStdEncoding.EncodeToString(key)), nil
	case FormatSHA256:
		sum := sha256.Sum256(salted(salt, secret))
		return fmt.Sprintf("$%d:%s:%s", FormatSHA256, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum[:])), nil
	case FormatSHA3:
		sum := sha3.Sum512(salted(salt, secret))
		return fmt.Sprintf("$%d:%d:%s:%s", FormatSHA3, sha3Variation, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum[:])), nil
	}
	return "", fmt.Errorf("unknown Rancher hash %s", f)
}
