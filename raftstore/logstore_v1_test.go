package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tokenstore/tokenstore/internal/layout"
)

// logFormatVersion is format 1's version stamp.
const logFormatVersion = 1

// v1LogStore is the format-1 raft log writer (raft.db) as it was before
// the WAL: tests use it to make old data directories and to compare the
// two in BenchmarkLogStoreSave. Its doc as it was:
//
// v1LogStore keeps raft's durable state in bbolt: entries, hard state and the
// metadata of the latest snapshot. Every Save is one fsynced transaction, so
// when it returns the state survives a crash; raft's contract requires that
// before any message depending on it is sent.
//
// The freelist is not written on commit (bbolt's NoFreelistSync, as etcd's
// backend): fewer pages per fsynced Ready; bbolt rebuilds it by scanning
// the file on open, which is quick for a log kept short by compaction. The
// file format is unchanged: binaries with either setting open it.
//
// v1LogStore is used only from the node's raft loop; it is not safe for
// concurrent use.
type v1LogStore struct {
	db *bolt.DB
}

func openV1LogStore(path string) (*v1LogStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open raft log %s: locked by another process (is a tokenstore already running on this data dir?)", path)
		}
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(logMetaBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(logEntriesBucket); err != nil {
			return err
		}
		return layout.CheckVersion(meta, logFormatVersion, "raft log")
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	return &v1LogStore{db: db}, nil
}

func (s *v1LogStore) Close() error { return s.db.Close() }

// save durably appends ents (replacing any existing suffix from ents[0].Index
// on, as raft requires when a follower's log is overwritten) and stores hs.
// Either may be empty.
func (s *v1LogStore) save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if (hs == nil || isEmptyHardState(hs)) && len(ents) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(logEntriesBucket)
		if len(ents) > 0 {
			// Drop a conflicting suffix.
			if err := deleteFrom(b, ents[0].GetIndex()); err != nil {
				return err
			}
			for _, e := range ents {
				v, err := proto.Marshal(e)
				if err != nil {
					return fmt.Errorf("encode entry %d: %w", e.GetIndex(), err)
				}
				if err := b.Put(indexKey(e.GetIndex()), v); err != nil {
					return err
				}
			}
		}
		if hs != nil && !isEmptyHardState(hs) {
			v, err := proto.Marshal(hs)
			if err != nil {
				return err
			}
			if err := tx.Bucket(logMetaBucket).Put(keyHardState, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	return nil
}

// saveSnapshot records snapshot metadata and drops the entries it covers that
// are at or below compactTo (compactTo <= snapshot index; entries between are
// kept so slightly lagging followers catch up from the log, not a snapshot).
func (s *v1LogStore) saveSnapshot(snap *raftpb.Snapshot, compactTo uint64) error {
	meta := &raftpb.Snapshot{Metadata: snap.GetMetadata()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		v, err := proto.Marshal(meta)
		if err != nil {
			return err
		}
		if err := tx.Bucket(logMetaBucket).Put(keySnapshot, v); err != nil {
			return err
		}
		return deleteUpTo(tx.Bucket(logEntriesBucket), compactTo)
	})
	if err != nil {
		return fmt.Errorf("persist snapshot metadata at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	return nil
}

// deleteUpTo drops keys at or below index. Keys are collected first: deleting
// under a live cursor can skip the key after each deleted one.
func deleteUpTo(b *bolt.Bucket, index uint64) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= index; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	return deleteKeys(b, keys)
}

// deleteFrom drops keys at or above index.
func deleteFrom(b *bolt.Bucket, index uint64) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(indexKey(index)); k != nil; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	return deleteKeys(b, keys)
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func isEmptyHardState(hs *raftpb.HardState) bool {
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}
