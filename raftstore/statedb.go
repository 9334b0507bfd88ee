package raftstore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/tokenstore/tokenstore/internal/layout"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Layout of the state database (state.db), raftstore's part. Version 1:
//
//	raftstore/version -> uint32 big endian (stateFormatVersion)
//	raftstore/applied -> raftstorev1.AppliedState
//	members/<id as uint64 big endian> -> raftstorev1.Member
//
// Every other bucket belongs to the StateMachine.
var (
	stateMetaBucket    = []byte("raftstore")
	stateMembersBucket = []byte("members")
	keyApplied         = []byte("applied")
)

const stateFormatVersion = 1

// stateDB is the state database: the state machine's buckets plus the applied
// state. Writes happen only on the apply loop; snapshot reads happen on
// transport goroutines through bbolt read transactions.
type stateDB struct {
	path  string
	db    *bolt.DB
	batch batch // the open write transaction of apply (batch.go)
}

// stateDBOptions are etcd's backend choices: the freelist is not written on
// commit (bbolt rebuilds it from the tree on open, a fraction of a second
// at a million tokens, instead of every batch commit writing it), and it
// is kept as a map so allocating pages stays constant-time however
// fragmented the file gets. Files written either way open either way.
var stateDBOptions = bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}

func openStateDB(path string) (*stateDB, error) {
	opts := stateDBOptions
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state database %s: locked by another process", path)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(stateMetaBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(stateMembersBucket); err != nil {
			return err
		}
		return layout.CheckVersion(meta, stateFormatVersion, "state database")
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	return &stateDB{path: path, db: db}, nil
}

// Close commits the open batch (a clean stop leaves nothing to replay) and
// closes the database. After a failed apply the batch is already gone and
// only the close happens.
func (s *stateDB) Close() error {
	_, err := s.commit()
	return errors.Join(err, s.db.Close())
}

// discard drops the open batch and closes the database: for a database
// replaced by a newer snapshot from the leader (everything in the batch is
// at or below the snapshot's index) and for tests that simulate a crash.
func (s *stateDB) discard() error {
	s.rollback()
	return s.db.Close()
}

// readApplied returns the applied state recorded in tx (zero for a new
// database).
func readApplied(tx *bolt.Tx) (*raftstorev1.AppliedState, *raftpb.ConfState, error) {
	as := &raftstorev1.AppliedState{}
	cs := &raftpb.ConfState{}
	b := tx.Bucket(stateMetaBucket)
	if b == nil {
		return nil, nil, errors.New("state database has no raftstore bucket")
	}
	if v := b.Get(keyApplied); v != nil {
		if err := proto.Unmarshal(v, as); err != nil {
			return nil, nil, fmt.Errorf("decode applied state: %w", err)
		}
		if err := proto.Unmarshal(as.GetConfState(), cs); err != nil {
			return nil, nil, fmt.Errorf("decode conf state: %w", err)
		}
	}
	return as, cs, nil
}

func writeApplied(tx *bolt.Tx, index, term uint64, cs *raftpb.ConfState) error {
	csb, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	v, err := proto.Marshal(&raftstorev1.AppliedState{Index: index, Term: term, ConfState: csb})
	if err != nil {
		return err
	}
	return tx.Bucket(stateMetaBucket).Put(keyApplied, v)
}

func putMember(tx *bolt.Tx, m *raftstorev1.Member) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Bucket(stateMembersBucket).Put(indexKey(m.GetId()), v)
}

func deleteMember(tx *bolt.Tx, id uint64) error {
	return tx.Bucket(stateMembersBucket).Delete(indexKey(id))
}

func readMembers(tx *bolt.Tx) ([]*raftstorev1.Member, error) {
	var out []*raftstorev1.Member
	err := tx.Bucket(stateMembersBucket).ForEach(func(_, v []byte) error {
		m := &raftstorev1.Member{}
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("decode member: %w", err)
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// receiveSnapshotFile writes a database streamed from the leader to path,
// checks its checksum and that it is a state database applied exactly to
// index, and syncs it. It returns the applied state found in it.
func receiveSnapshotFile(path string, r io.Reader, wantSHA func() []byte, index uint64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create snapshot file: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("receive snapshot data: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync snapshot file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("close snapshot file: %w", err)
	}
	if want := wantSHA(); want == nil || string(want) != string(h.Sum(nil)) {
		os.Remove(path)
		return errors.New("snapshot checksum mismatch")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("open received snapshot: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		as, _, err := readApplied(tx)
		if err != nil {
			return fmt.Errorf("received snapshot: %w", err)
		}
		if as.GetIndex() != index {
			return fmt.Errorf("received snapshot is applied to %d, message says %d", as.GetIndex(), index)
		}
		return nil
	})
}
