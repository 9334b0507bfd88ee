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
)

// raftDBFile is raft log format 1: a bbolt database, replaced by the WAL
// (format 2) and kept only to be read once when migrating. Layout:
//
//	meta/version   -> uint32 big endian (1)
//	meta/hardstate -> raftpb.HardState
//	meta/snapshot  -> raftpb.Snapshot (metadata only; Data is empty)
//	entries/<index as uint64 big endian> -> raftpb.Entry
const raftDBFile = "raft.db"

var (
	logMetaBucket    = []byte("meta")
	logEntriesBucket = []byte("entries")
	keyHardState     = []byte("hardstate")
	keySnapshot      = []byte("snapshot")
	keyLogVersion    = []byte("version")
)

// v1Log is everything raft.db held.
type v1Log struct {
	snap *raftpb.Snapshot
	hs   *raftpb.HardState
	ents []*raftpb.Entry
}

// openLogV1 opens a format-1 raft log (raft.db) for migrating it. bbolt's
// exclusive lock (a read-write open; nothing is written: the freelist is
// not synced, as the old writer had it) keeps a second process from
// migrating the same directory at the same time.
func openLogV1(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open raft log %s: locked by another process (is a tokenstore already running on this data dir?)", path)
		}
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	return db, nil
}

// readLogV1 reads a format-1 raft log: the snapshot metadata (nil if none),
// the hard state (nil if none) and the entries after the snapshot, in order.
func readLogV1(db *bolt.DB) (*v1Log, error) {
	path := db.Path()
	out := &v1Log{}
	err := db.View(func(tx *bolt.Tx) error {
		meta, entries := tx.Bucket(logMetaBucket), tx.Bucket(logEntriesBucket)
		if meta == nil || entries == nil {
			return nil // created and never written: an empty log
		}
		if v := meta.Get(keyLogVersion); v != nil && (len(v) != 4 || binary.BigEndian.Uint32(v) != 1) {
			return fmt.Errorf("format version %x is not 1", v)
		}
		if b := meta.Get(keySnapshot); b != nil {
			out.snap = &raftpb.Snapshot{}
			if err := proto.Unmarshal(b, out.snap); err != nil {
				return fmt.Errorf("decode snapshot metadata: %w", err)
			}
		}
		if b := meta.Get(keyHardState); b != nil {
			out.hs = &raftpb.HardState{}
			if err := proto.Unmarshal(b, out.hs); err != nil {
				return fmt.Errorf("decode hard state: %w", err)
			}
		}
		after := out.snap.GetMetadata().GetIndex()
		expect := after + 1
		c := entries.Cursor()
		for k, v := c.Seek(indexKey(after + 1)); k != nil; k, v = c.Next() {
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decode entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if e.GetIndex() != expect {
				return fmt.Errorf("raft log has a gap: expected entry %d, found %d", expect, e.GetIndex())
			}
			expect++
			out.ents = append(out.ents, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read raft log %s: %w", path, err)
	}
	return out, nil
}

func indexKey(i uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return b[:]
}
