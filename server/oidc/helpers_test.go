package oidc

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// testStore is a Store on a real bbolt file, applying commands as the raft
// loop does: one transaction per entry, then Committed.
type testStore struct {
	*Store
	db    *bolt.DB
	index uint64
}

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &testStore{Store: NewStore(), db: db}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := s.Init(tx); err != nil {
			return err
		}
		return s.Restore(tx)
	}); err != nil {
		t.Fatal(err)
	}
	s.Committed(0)
	return s
}

// apply runs one command in its own transaction at the next index.
func (s *testStore) apply(t testing.TB, fn func(tx *bolt.Tx, index uint64) (Result, error)) Result {
	t.Helper()
	s.index++
	var res Result
	if err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		res, err = fn(tx, s.index)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Committed(s.index)
	return res
}

// put puts configurations (YAML) and fails the test on any refusal.
func (s *testStore) put(t testing.TB, docs string) {
	t.Helper()
	cs, err := ParseDocuments([]byte(docs))
	if err != nil {
		t.Fatal(err)
	}
	cmd := &raftstorev1.PutOIDCIssuers{}
	for _, c := range cs {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Issuers = append(cmd.Issuers, &raftstorev1.OIDCIssuer{Name: c.Issuer.URL, Config: b, KeySource: c.KeySource()})
	}
	res := s.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) { return s.ApplyPut(tx, i, cmd) })
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}

// setKeys replicates a JWKS document for an issuer.
func (s *testStore) setKeys(t testing.TB, issuer string, jwks []byte) Result {
	t.Helper()
	_, canon, err := ParseKeySet(jwks)
	if err != nil {
		t.Fatal(err)
	}
	src := s.View().Issuer(issuer).Record.GetKeySource()
	return s.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) {
		return s.ApplySetKeys(tx, i, &raftstorev1.SetOIDCIssuerKeys{Name: issuer, KeySource: src, Jwks: canon, FetchedUnixNano: 1})
	})
}
