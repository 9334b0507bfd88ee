package oidc

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

func TestStoreKeepsKeysUntilTheirSourceChanges(t *testing.T) {
	s := newTestStore(t)
	k, err := oidctest.NewKey("k1", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	s.put(t, issuerYAML(testIssuer, ""))
	s.setKeys(t, testIssuer, jwksOf(k))
	keysRev := s.View().Issuer(testIssuer).Record.GetKeysRevision()

	// A new leeway is a new configuration from the same source: keys stay.
	s.put(t, issuerYAML(testIssuer, "2m"))
	is := s.View().Issuer(testIssuer)
	if is.Keys.Len() != 1 || is.Record.GetKeysRevision() != keysRev || is.Record.GetConfigRevision() != s.index {
		t.Fatalf("after a leeway change: %d keys, keys revision %d (want %d)", is.Keys.Len(), is.Record.GetKeysRevision(), keysRev)
	}
	// The same configuration again changes nothing.
	before := s.View().Issuer(testIssuer).Record
	s.put(t, issuerYAML(testIssuer, "2m"))
	if s.View().Issuer(testIssuer).Record != before {
		t.Fatal("an unchanged put rewrote the issuer")
	}
	// Keys fetched for the old source are refused once it changed.
	oldSrc := before.GetKeySource()
	s.put(t, strings.Replace(issuerYAML(testIssuer, ""), "audiences:", "discoveryURL: https://elsewhere.example/d\n  audiences:", 1))
	if n := s.View().Issuer(testIssuer).Keys.Len(); n != 0 {
		t.Fatalf("keys kept across a source change: %d", n)
	}
	_, canon, _ := ParseKeySet(jwksOf(k))
	res := s.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) {
		return s.ApplySetKeys(tx, i, &raftstorev1.SetOIDCIssuerKeys{Name: testIssuer, KeySource: oldSrc, Jwks: canon})
	})
	if !errors.Is(res.Err, ErrStale) {
		t.Fatalf("stale keys: %v", res.Err)
	}

	// A restart (Restore from the file) reads back the same issuers.
	r := NewStore()
	if err := s.db.View(func(tx *bolt.Tx) error { return r.Restore(tx) }); err != nil {
		t.Fatal(err)
	}
	r.Committed(s.index)
	if got, want := r.View().Issuer(testIssuer).Record.GetConfig(), s.View().Issuer(testIssuer).Record.GetConfig(); string(got) != string(want) {
		t.Fatalf("restored config %s, want %s", got, want)
	}

	res = s.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) {
		return s.ApplyDelete(tx, &raftstorev1.DeleteOIDCIssuer{Name: testIssuer})
	})
	if res.Err != nil || s.View().Len() != 0 {
		t.Fatalf("delete: %v, %d issuers left", res.Err, s.View().Len())
	}
	res = s.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) {
		return s.ApplyDelete(tx, &raftstorev1.DeleteOIDCIssuer{Name: testIssuer})
	})
	if !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("delete twice: %v", res.Err)
	}
}

func TestParseKeySetKeepsOnlyPublicSigningKeys(t *testing.T) {
	k, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	priv := jose.JSONWebKey{Key: k.Private, KeyID: "private", Use: "sig"}
	privJSON, _ := priv.MarshalJSON()
	pubJSON, _ := k.JWK().MarshalJSON()
	doc := `{"keys":[` + string(pubJSON) + `,` + string(privJSON) +
		`,{"kty":"oct","k":"c2VjcmV0","kid":"hmac"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"enc"},{"kty":"weird","kid":"x"}]}`
	ks, canon, err := ParseKeySet([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ks.IDs(), ","); got != "k1,private" {
		t.Fatalf("kept %s", got)
	}
	if strings.Contains(string(canon), `"d":`) {
		t.Fatal("private key material replicated")
	}
	if _, _, err := ParseKeySet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a set of only symmetric keys accepted")
	}
}

// A state database written before OIDC existed has no OIDC buckets:
// Restore reads it as no issuers, and Init adds the buckets.
func TestStoreReadsAnOlderDatabase(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "old.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("tokens")); return err }); err != nil {
		t.Fatal(err)
	}
	s := NewStore()
	if err := db.View(func(tx *bolt.Tx) error { return s.Restore(tx) }); err != nil {
		t.Fatalf("restore from a database without OIDC buckets: %v", err)
	}
	s.Committed(7)
	if v := s.View(); v.Len() != 0 || v.Applied != 7 {
		t.Fatalf("view %d issuers at %d", v.Len(), v.Applied)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return s.Init(tx) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(keyVersion, []byte{0, 0, 0, 9})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return s.Init(tx) }); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("a newer layout: %v", err)
	}
}
