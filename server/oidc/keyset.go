package oidc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits refuses RSA keys too short to trust.
const minRSABits = 2048

// KeySet is an issuer's public signing keys.
type KeySet struct {
	keys []jose.JSONWebKey
}

// ParseKeySet decodes a JWKS document and keeps its public signing keys:
// RSA (at least 2048 bits), ECDSA and Ed25519. Symmetric keys are dropped
// (HMAC with a published key would let anyone sign), private halves are
// stripped, keys marked for encryption and keys this library cannot read
// are skipped. It returns the kept set and its canonical encoding, the
// bytes that are replicated. A document without a usable key is an error.
func ParseKeySet(b []byte) (*KeySet, []byte, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("decode JWKS: %w", err)
	}
	ks := &KeySet{}
	var skipped []string
	for i, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				skipped = append(skipped, fmt.Sprintf("key %q: RSA key of %d bits", k.KeyID, pk.N.BitLen()))
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			skipped = append(skipped, fmt.Sprintf("key %q: %T is not a public signing key", k.KeyID, k.Key))
			continue
		}
		if !k.Valid() {
			skipped = append(skipped, fmt.Sprintf("key %q: invalid", k.KeyID))
			continue
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		if len(skipped) > 0 {
			return nil, nil, fmt.Errorf("JWKS has no usable signing key (%v)", skipped)
		}
		return nil, nil, errors.New("JWKS has no usable signing key")
	}
	canon, err := json.Marshal(jose.JSONWebKeySet{Keys: ks.keys})
	if err != nil {
		return nil, nil, fmt.Errorf("encode JWKS: %w", err)
	}
	return ks, canon, nil
}

// decodeStored reads a replicated key set. It was canonicalised by the
// leader, so it parses the same way on every member.
func decodeStored(b []byte) (*KeySet, error) {
	if len(b) == 0 {
		return &KeySet{}, nil
	}
	ks, _, err := ParseKeySet(b)
	return ks, err
}

// IDs are the key ids, in set order.
func (ks *KeySet) IDs() []string {
	out := make([]string, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = k.KeyID
	}
	return out
}

// Len is the number of keys.
func (ks *KeySet) Len() int { return len(ks.keys) }

// candidates are the keys that may have signed a token with key id kid and
// algorithm alg: the key with that id, or, for a token without kid, every
// key whose algorithm (when the key names one) is alg.
func (ks *KeySet) candidates(kid, alg string) []*jose.JSONWebKey {
	var out []*jose.JSONWebKey
	for i := range ks.keys {
		k := &ks.keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}
