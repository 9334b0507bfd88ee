package clustertest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	bolt "go.etcd.io/bbolt"
)

// TestRaftDBMigratesToWAL starts this build on a copy of a data directory
// written by the last binary with a bbolt raft log (raft.db, format 1; made
// with commit 0401226 as a one-member cluster, a raft snapshot every 4
// entries and killed with SIGKILL right after its last two creates, so
// raft.db holds entries after its snapshot). The member must migrate the
// log to wal/, leave raft.db as the downgrade guard (format 2, no entries,
// which the old binary refuses), and every token created by the old binary
// must authenticate; a restart on the migrated directory must too.
func TestRaftDBMigratesToWAL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var toks []struct{ ID, Token string }
	b, err := os.ReadFile(filepath.Join("..", "raftstore", "testdata", "v1-tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &toks); err != nil || len(toks) == 0 {
		t.Fatalf("fixture tokens: %v (%d)", err, len(toks))
	}
	c, err := harness.New(bin, t.TempDir(), harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails(40))
		}
		c.Stop()
	})
	m, err := c.NewMember("fx1") // the fixture's member name
	if err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join("..", "raftstore", "testdata", "v1-datadir"), m.DataDir)
	check := func(when string) {
		t.Helper()
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for _, k := range toks {
			r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: k.Token, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
			if err != nil || !r.GetAuthenticated() {
				t.Fatalf("%s: token %s made by the old binary: %v %v", when, k.ID, r.GetMessage(), err)
			}
		}
		if v, err := raftDBVersion(filepath.Join(m.DataDir, "raft.db")); err != nil || v != 2 {
			t.Fatalf("%s: raft.db is not the downgrade guard (format 2, no entries): version %d, %v", when, v, err)
		}
		segs, _ := filepath.Glob(filepath.Join(m.DataDir, "wal", "*.wal"))
		if len(segs) == 0 {
			t.Fatalf("%s: no WAL segments", when)
		}
		c.Terminate(m)
	}
	check("after migration")
	log, err := os.ReadFile(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "migrating the raft log from raft.db"); n != 1 {
		t.Fatalf("%d migration log lines, want 1", n)
	}
	check("after a restart on the migrated directory")
	log, _ = os.ReadFile(m.LogPath)
	if n := strings.Count(string(log), "migrating the raft log from raft.db"); n != 1 {
		t.Fatalf("%d migration log lines after the restart, want still 1", n)
	}
}

// copyTree copies the regular files of src into dst (created 0700).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// raftDBVersion reads the format version of a raft.db and checks that it
// holds no entries.
func raftDBVersion(path string) (uint32, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var v uint32
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("entries")) != nil {
			return errors.New("raft.db still has an entries bucket")
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("raft.db has no meta bucket")
		}
		if b := meta.Get([]byte("version")); len(b) == 4 {
			v = binary.BigEndian.Uint32(b)
		}
		return nil
	})
	return v, err
}
