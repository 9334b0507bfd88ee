package raftstore

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenstore/tokenstore/internal/layout"
)

// openAsPreWALBinary opens raft.db exactly as the last binary before the
// WAL did (0401226's openLogStore: create the meta and entries buckets,
// then check the format version against 1) and returns its error.
func openAsPreWALBinary(t *testing.T, path string) error {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(logMetaBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(logEntriesBucket); err != nil {
			return err
		}
		return layout.CheckVersion(meta, 1, "raft log")
	})
}

// checkGuard asserts that dir's raft.db is the downgrade guard: a binary
// from before the WAL refuses it.
func checkGuard(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, raftDBFile)
	if !hasFile(path) {
		t.Fatalf("no raft.db downgrade guard in %s", dir)
	}
	err := openAsPreWALBinary(t, path)
	if err == nil || !strings.Contains(err.Error(), "format version 2 is newer than this binary supports (1)") {
		t.Fatalf("a pre-WAL binary opening raft.db: %v, want a refusal of format 2", err)
	}
}

// A member created by this binary leaves a raft.db that older binaries
// refuse, and reopening keeps it (and the log) as it is.
func TestFreshLogHasDowngradeGuard(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		s, err := openLogStore(dir, slog.New(slog.DiscardHandler), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkGuard(t, dir)
	}
	if !HasRaftLog(dir) {
		t.Fatal("HasRaftLog is false for a directory with a WAL")
	}
}

// The guard without wal/ means the log is lost: refuse rather than start
// as a member without raft state.
func TestGuardWithoutWALIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := openLogStore(dir, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.RemoveAll(filepath.Join(dir, walDir)); err != nil {
		t.Fatal(err)
	}
	_, err = openLogStore(dir, slog.New(slog.DiscardHandler), 0)
	if err == nil || !strings.Contains(err.Error(), "which is missing") {
		t.Fatalf("opening a guard without wal/: %v, want a refusal", err)
	}
}
