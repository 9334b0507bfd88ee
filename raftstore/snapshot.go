package raftstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshots. raft's own snapshots carry metadata only (index, term,
// configuration); the data is the state database itself. When raft asks to
// send a snapshot, the sender takes a consistent read transaction of the
// database, rewrites the message's metadata to the index that transaction is
// applied to (never behind raft's snapshot, never past the commit index) and
// streams the database. The receiver writes it to a file next to state.db,
// checks it, and only then hands the message to raft; when raft asks for the
// snapshot to be applied, the file replaces state.db before the raft log
// records the snapshot, so after a crash the database is never behind the
// log's snapshot.

const incomingPrefix = "state.db.incoming-"

func incomingPath(dir string, index uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d", incomingPrefix, index))
}

func removeIncomingSnapshots(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, incomingPrefix+"*"))
	for _, m := range matches {
		os.Remove(m)
	}
}

// OpenSnapshot implements Handler.
func (n *Node) OpenSnapshot(m *raftpb.Message) (*SnapshotStream, error) {
	n.stateMu.RLock()
	_, err := n.state.commit() // send everything applied
	var tx *bolt.Tx
	if err == nil {
		tx, err = n.state.db.Begin(false)
	}
	n.stateMu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("open snapshot transaction: %w", err)
	}
	as, cs, err := readApplied(tx)
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	msg := proto.Clone(m).(*raftpb.Message)
	msg.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     proto.Uint64(as.GetIndex()),
		Term:      proto.Uint64(as.GetTerm()),
		ConfState: cs,
	}}
	pr, pw := io.Pipe()
	size := tx.Size()
	go func() {
		_, err := tx.WriteTo(pw)
		pw.CloseWithError(err)
		tx.Rollback()
	}()
	n.metrics.SnapshotSends.Add(1)
	n.log.Info("sending snapshot", "to", fmt.Sprintf("%016x", m.GetTo()), "index", as.GetIndex(), "bytes", size)
	return &SnapshotStream{Message: msg, Size: size, ReadCloser: pr}, nil
}

// ReceiveSnapshot implements Handler.
func (n *Node) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, db io.Reader, checksum func() []byte) error {
	index := m.GetSnapshot().GetMetadata().GetIndex()
	path := incomingPath(n.cfg.DataDir, index)
	if err := receiveSnapshotFile(path, db, checksum, index); err != nil {
		os.Remove(path)
		return fmt.Errorf("receive snapshot at %d: %w", index, err)
	}
	n.metrics.SnapshotsReceived.Add(1)
	// "installed snapshot" is the line an operator sees; this one is detail.
	n.log.Debug("received snapshot", "from", fmt.Sprintf("%016x", m.GetFrom()), "index", index)
	return n.raft.Step(ctx, m)
}

// installSnapshot replaces the state database with the received one that
// snap describes, then records the snapshot in the raft log. Runs on the
// raft loop, which is also the apply loop, so no apply is in progress.
func (n *Node) installSnapshot(snap *raftpb.Snapshot) error {
	index := snap.GetMetadata().GetIndex()
	path := incomingPath(n.cfg.DataDir, index)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("install snapshot at %d: received database missing: %w", index, err)
	}
	// Opened and restored at its received path, then renamed over state.db
	// and swapped in under the lock: a concurrent read never finds the
	// node without a database.
	if err := n.openState(path, filepath.Join(n.cfg.DataDir, "state.db")); err != nil {
		return fmt.Errorf("install snapshot at %d: %w", index, err)
	}
	members, err := n.members()
	if err != nil {
		return fmt.Errorf("install snapshot at %d: %w", index, err)
	}
	for _, m := range members {
		if m.GetId() != n.cfg.ID {
			n.trans.AddPeer(m.GetId(), m.GetPeerAddress())
		}
	}
	if err := n.logs.saveSnapshot(snap, index); err != nil {
		return err
	}
	if err := n.mem.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("install snapshot at %d: %w", index, err)
	}
	n.snapshotIndex = index
	n.publishConfState()
	n.notifyApplied()
	removeIncomingSnapshots(n.cfg.DataDir)
	n.metrics.SnapshotsInstalled.Add(1)
	n.log.Info("installed snapshot", "index", index)
	return nil
}

// maybeSnapshot takes a raft snapshot (metadata only) once SnapshotCount
// entries were applied since the last one, and compacts the log behind it,
// keeping CatchUpEntries entries.
func (n *Node) maybeSnapshot() error {
	applied := n.applied.Load()
	if applied-n.snapshotIndex < n.cfg.SnapshotCount {
		return nil
	}
	last, err := n.mem.LastIndex()
	if err != nil || applied > last {
		return nil // the log has not caught up with an installed database yet
	}
	// The log is compacted behind the snapshot: the state database must
	// hold every entry up to it durably first (batch.go).
	if err := n.commitState(); err != nil {
		return err
	}
	snap, err := n.mem.CreateSnapshot(applied, n.confState, nil)
	if err != nil {
		return fmt.Errorf("create snapshot at %d: %w", applied, err)
	}
	var compactTo uint64
	if applied > n.cfg.CatchUpEntries {
		compactTo = applied - n.cfg.CatchUpEntries
	}
	if err := n.logs.saveSnapshot(snap, compactTo); err != nil {
		return err
	}
	if first, _ := n.mem.FirstIndex(); compactTo >= first {
		if err := n.mem.Compact(compactTo); err != nil {
			return fmt.Errorf("compact log to %d: %w", compactTo, err)
		}
	}
	n.snapshotIndex = applied
	n.metrics.SnapshotsTaken.Add(1)
	n.log.Info("snapshot taken", "index", applied, "compacted_to", compactTo)
	return nil
}

// SaveSnapshot writes a consistent copy of the state database to w and
// returns the revision (applied index) it holds and its size. fn is called
// with those before any byte is written, so a stream can send them first.
func (n *Node) SaveSnapshot(w io.Writer, fn func(revision uint64, size int64) error) error {
	n.stateMu.RLock()
	_, err := n.state.commit() // save everything applied
	var tx *bolt.Tx
	if err == nil {
		tx, err = n.state.db.Begin(false)
	}
	n.stateMu.RUnlock()
	if err != nil {
		return fmt.Errorf("open snapshot transaction: %w", err)
	}
	defer tx.Rollback()
	as, _, err := readApplied(tx)
	if err != nil {
		return err
	}
	if err := fn(as.GetIndex(), tx.Size()); err != nil {
		return err
	}
	if _, err := tx.WriteTo(w); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// StateHash returns the SHA-256 of the application's state (every bucket
// but raftstore's own, keys and values in order) and the revision it was
// read at. Members at the same revision must agree; a difference means
// they diverged.
func (n *Node) StateHash() (string, uint64, error) {
	var sum string
	var rev uint64
	err := n.View(func(tx *bolt.Tx, applied uint64) error {
		rev = applied
		h := sha256.New()
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name) == string(stateMetaBucket) || string(name) == string(stateMembersBucket) {
				return nil
			}
			fmt.Fprintf(h, "bucket %d:%s\n", len(name), name)
			return b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(h, "%d:%s=%d:", len(k), k, len(v))
				h.Write(v)
				return nil
			})
		})
		sum = hex.EncodeToString(h.Sum(nil))
		return err
	})
	return sum, rev, err
}
