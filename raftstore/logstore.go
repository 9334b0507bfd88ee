package raftstore

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tokenstore/tokenstore/internal/durable"
	"github.com/tokenstore/tokenstore/raftstore/wal"
)

// walDir is the raft log (format 2, package wal) inside a data directory;
// walTmpDir is where a migration from raft.db builds it.
const (
	walDir    = "wal"
	walTmpDir = "wal.tmp"
)

// logStore is raft's durable state for the node: a thin adapter over the
// WAL (raftstore/wal), which states the format and crash guarantees. Every
// save is one write and one fdatasync. Used only from the raft loop.
type logStore struct {
	w *wal.WAL
}

// HasRaftLog reports whether the data directory dir holds a raft log, in
// either format.
func HasRaftLog(dir string) bool {
	return hasFile(filepath.Join(dir, walDir)) || hasFile(filepath.Join(dir, raftDBFile))
}

// openLogStore opens the raft log of the data directory dir, migrating a
// format-1 raft.db first if that is what it holds (migrateLog).
func openLogStore(dir string, log *slog.Logger, syncDelay time.Duration) (*logStore, error) {
	if err := migrateLog(dir, log); err != nil {
		return nil, err
	}
	w, err := wal.Open(filepath.Join(dir, walDir), wal.Options{SyncDelay: syncDelay})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	// With wal/ open (and locked): raft.db becomes the downgrade guard
	// (logguard.go), replacing a migrated format-1 file.
	if err := ensureLogGuard(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	return &logStore{w: w}, nil
}

// migrateLog turns a format-1 raft.db into a WAL. Every step is safe to
// crash in and redo: the WAL is built in wal.tmp (discarded if found), made
// durable, renamed to wal and the directory synced; only then does
// openLogStore replace raft.db with the downgrade guard. With wal present,
// the rename happened: wal is complete and wins over any raft.db.
func migrateLog(dir string, log *slog.Logger) error {
	tmp, final, old := filepath.Join(dir, walTmpDir), filepath.Join(dir, walDir), filepath.Join(dir, raftDBFile)
	if hasFile(final) {
		return nil
	}
	if hasFile(old) {
		guard, err := isLogGuard(old)
		if err != nil {
			return fmt.Errorf("migrate raft log: %w", err)
		}
		if guard {
			return fmt.Errorf("data directory %s: raft.db says the raft log is in %s/, which is missing: the data directory is incomplete; restore it or remove the member and re-add it", dir, walDir)
		}
	}
	if !hasFile(old) {
		// Nothing to migrate; a wal.tmp is what a restore that crashed
		// left.
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove unfinished %s: %w", tmp, err)
		}
		return nil
	}
	db, err := openLogV1(old)
	if err != nil {
		return fmt.Errorf("migrate raft log: %w", err)
	}
	defer db.Close()
	// Under raft.db's lock: no other process is building wal.tmp.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("migrate raft log: remove unfinished %s: %w", tmp, err)
	}
	v1, err := readLogV1(db)
	if err != nil {
		return fmt.Errorf("migrate raft log: %w", err)
	}
	log.Info("migrating the raft log from raft.db (format 1) to a write-ahead log (format 2)", "dir", dir, "entries", len(v1.ents),
		"snapshot_index", v1.snap.GetMetadata().GetIndex())
	if err := createLog(dir, v1.snap, v1.hs, v1.ents); err != nil {
		return fmt.Errorf("migrate raft log: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("migrate raft log: close %s: %w", old, err)
	}
	return nil
}

// createLog writes a complete raft log into the data directory dir: built
// in wal.tmp, made durable, then renamed to wal and the directory synced,
// so a crash leaves either no log or all of it.
func createLog(dir string, snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	tmp := filepath.Join(dir, walTmpDir)
	if err := writeLog(tmp, snap, hs, ents); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDir)); err != nil {
		return fmt.Errorf("create raft log: %w", err)
	}
	return durable.SyncDir(dir)
}

// writeLog writes a complete, durable WAL into dir (new).
func writeLog(dir string, snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	w, err := wal.Open(dir, wal.Options{})
	if err != nil {
		return err
	}
	if snap != nil {
		if err := w.SaveSnapshot(snap, 0); err != nil {
			w.Close()
			return err
		}
	}
	// In chunks: a record per save, and records are bounded.
	const chunk = 1024
	for len(ents) > 0 {
		n := min(chunk, len(ents))
		if err := w.Save(nil, ents[:n]); err != nil {
			w.Close()
			return err
		}
		ents = ents[n:]
	}
	if hs != nil {
		if err := w.Save(hs, nil); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

func (s *logStore) Close() error { return s.w.Close() }

// load returns everything needed to rebuild raft's MemoryStorage: the latest
// snapshot metadata (nil if none), the hard state (nil if none) and the
// entries after the snapshot, in order.
func (s *logStore) load() (*raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry, error) {
	snap, hs, ents, err := s.w.Load()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load raft log: %w", err)
	}
	return snap, hs, ents, nil
}

// save durably appends ents (replacing any existing suffix from ents[0].Index
// on, as raft requires when a follower's log is overwritten) and stores hs.
// Either may be empty.
func (s *logStore) save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	return s.w.Save(hs, ents)
}

// saveSnapshot records snapshot metadata and drops log segments holding only
// entries at or below compactTo (compactTo <= snapshot index; entries
// between are kept so slightly lagging followers catch up from the log, not
// a snapshot).
func (s *logStore) saveSnapshot(snap *raftpb.Snapshot, compactTo uint64) error {
	return s.w.SaveSnapshot(snap, compactTo)
}

// truncateAfter drops entries after index.
func (s *logStore) truncateAfter(index uint64) error {
	return s.w.TruncateAfter(index)
}
