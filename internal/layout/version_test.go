package layout

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestCheckVersion(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "v.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(want uint32) error {
		return db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists([]byte("meta"))
			if err != nil {
				return err
			}
			return CheckVersion(meta, want, "test")
		})
	}
	if err := check(2); err != nil {
		t.Fatalf("stamping a new layout: %v", err)
	}
	if err := check(3); err != nil {
		t.Fatalf("a newer binary reading version 2: %v", err)
	}
	if err := check(1); err == nil || !strings.Contains(err.Error(), "newer than this binary supports") {
		t.Fatalf("an older binary reading version 2: %v, want a refusal", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put(versionKey, []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if err := check(2); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a corrupt version: %v, want a refusal", err)
	}
}
