package raftstore

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenstore/tokenstore/internal/durable"
)

// A data directory whose raft log is the WAL keeps a raft.db that holds
// only meta/version = 2: the downgrade guard. A binary from before the WAL
// opens raft.db first, finds a format newer than it supports and refuses to
// start ("raft log: format version 2 is newer than this binary supports
// (1); upgrade tokenstore"). Without it, that binary would find no raft.db,
// take the directory for one without raft state and bootstrap or join a
// cluster on top of state.db: silent divergence instead of a clear error.
//
// Every binary with the WAL writes the guard once wal/ exists (fresh
// member, migration, restore), replacing a format-1 raft.db left behind
// by a migration that crashed after wal/ was renamed into place.

// logGuardVersion is the raft log format the guard announces: the WAL's.
const logGuardVersion = 2

// ensureLogGuard makes raft.db in dir the downgrade guard unless it
// already is. The guard is built under a temporary name, synced and renamed
// over raft.db, so a crash leaves the old file or the guard, never half of
// one. Called with wal/ in place (and locked by this process).
func ensureLogGuard(dir string) error {
	path := filepath.Join(dir, raftDBFile)
	if hasFile(path) {
		is, err := isLogGuard(path)
		if err != nil {
			return err
		}
		if is {
			return nil
		}
	}
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("write raft.db downgrade guard: %w", err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("write raft.db downgrade guard: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(logMetaBucket)
		if err != nil {
			return err
		}
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], logGuardVersion)
		return meta.Put(keyLogVersion, v[:])
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write raft.db downgrade guard: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write raft.db downgrade guard: %w", err)
	}
	return durable.SyncDir(dir)
}

// isLogGuard reports whether the raft.db at path is the downgrade guard
// rather than a format-1 raft log.
func isLogGuard(path string) (bool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var version uint32
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(logMetaBucket)
		if meta == nil {
			return nil // created and never written: an empty format-1 log
		}
		if v := meta.Get(keyLogVersion); len(v) == 4 {
			version = binary.BigEndian.Uint32(v)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return version == logGuardVersion, nil
}
