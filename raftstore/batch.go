package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Batched state database commits (etcd's backend batch transaction).
//
// Applying a Ready does not commit state.db: the entries go into one
// long-lived bbolt write transaction, the batch, which is committed (with
// fsync) every Config.BatchInterval or Config.BatchEntries entries, before
// a raft snapshot, before any reader of the database and on a clean stop.
// Per Ready only the raft log (wal/) is fsynced.
//
// Why this is crash safe: the applied index is written into the batch with
// the entries it covers, so the applied index durable in state.db is always
// that of the last committed batch, and everything after it is still in
// the raft log: the log is compacted only behind a snapshot, and a snapshot is
// taken only right after a batch commit (maybeSnapshot), at the index that
// commit made durable. After a crash the member reopens state.db at that
// index, raft replays the committed entries from the log, and apply
// re-applies those after it, into a state machine restored from the same
// database: the same entries on the same state, hence the same state
// (Apply is deterministic), members bucket and configuration included.
//
// Why a batch transaction and not bbolt's NoSync commits: a NoSync commit
// writes pages and a meta page without fsync. bbolt keeps two meta pages
// and alternates between them, and reuses pages freed by earlier
// transactions, so the commit after a synced one overwrites the synced
// meta page and may overwrite pages the synced tree still uses. After a
// power loss the file can hold a torn meta page next to a meta page that
// points at pages never written: no periodic sync makes that safe. An
// uncommitted transaction writes nothing to the file (its dirty pages are
// in memory until Commit), so a crash or power loss leaves state.db at its
// last committed, fsynced transaction, which bbolt guarantees is intact.
//
// The in-memory state is published (Committer.Committed) when a Ready is
// applied to the batch, not when the batch commits: it is durable in
// the raft log, which is all a restart needs. Readers of the state database
// itself (View, snapshots, the state hash) commit the batch first, so they
// see everything applied and never a transaction in progress.
type batch struct {
	mu sync.Mutex
	// tx is the open batch, nil when everything applied is committed.
	tx *bolt.Tx
	// entries counts the entries applied into tx, since when it is open,
	// and last is the applied index recorded in it.
	entries int
	since   time.Time
	last    uint64
	// err, once set, is returned by every later use: a failed commit or
	// an aborted apply lost the batch, and the database must not be
	// written past the hole (the node stops; a restart replays the log).
	err error
	// durable is the applied index of the last committed batch.
	durable atomic.Uint64
}

// begin locks the batch for an apply and returns its transaction, opening
// one if none is open. The caller must call applied or abort.
func (s *stateDB) begin() (*bolt.Tx, error) {
	b := &s.batch
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return nil, err
	}
	if b.tx == nil {
		tx, err := s.db.Begin(true)
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("begin state transaction: %w", err)
		}
		b.tx, b.since = tx, time.Now()
	}
	return b.tx, nil
}

// applied ends a successful apply that wrote entries entries up to index
// (none: a replay of entries already in the database) and unlocks the
// batch.
func (s *stateDB) applied(index uint64, entries int) {
	b := &s.batch
	if entries > 0 {
		b.last = index
		b.entries += entries
	} else if b.entries == 0 && b.tx != nil {
		b.tx.Rollback() // opened for nothing
		b.tx = nil
	}
	b.mu.Unlock()
}

// opened records the applied index found in a newly opened database.
func (s *stateDB) opened(index uint64) {
	s.batch.last = index
	s.batch.durable.Store(index)
}

// abort ends a failed apply: the whole batch is rolled back (its earlier
// entries are in the raft log and a restart replays them) and the database
// refuses further writes. It unlocks the batch.
func (s *stateDB) abort(cause error) {
	b := &s.batch
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
	}
	b.err = fmt.Errorf("state database batch abandoned after an apply failure: %w", cause)
	b.mu.Unlock()
}

// due says whether the open batch should be committed now.
func (s *stateDB) due(interval time.Duration, maxEntries int) bool {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tx != nil && (b.entries >= maxEntries || time.Since(b.since) >= interval)
}

// commit commits the open batch with fsync, if any, and says whether there
// was one. Safe from any goroutine.
func (s *stateDB) commit() (bool, error) {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return false, b.err
	}
	if b.tx == nil {
		return false, nil
	}
	tx := b.tx
	b.tx = nil
	if err := tx.Commit(); err != nil {
		b.err = fmt.Errorf("commit state database up to %d: %w", b.last, err)
		return false, b.err
	}
	b.entries = 0
	b.durable.Store(b.last)
	return true, nil
}

// rollback drops the open batch without marking the database failed: for a
// database about to be replaced by a newer snapshot, or closed by a test
// that simulates a crash.
func (s *stateDB) rollback() {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
		b.entries = 0
	}
}

// commitState commits the current state database's batch; a failure stops
// the node (the batch is lost, so nothing may be applied after it).
func (n *Node) commitState() error {
	n.stateMu.RLock()
	st := n.state
	n.stateMu.RUnlock()
	start := time.Now()
	committed, err := st.commit()
	if err != nil {
		n.fail(err)
		return err
	}
	if committed {
		n.metrics.StateCommits.Add(1)
		n.metrics.StateCommitDuration.Observe(time.Since(start))
	}
	return nil
}

// maybeCommitState commits the batch once it is old or big enough.
func (n *Node) maybeCommitState() error {
	n.stateMu.RLock()
	st := n.state
	n.stateMu.RUnlock()
	if !st.due(n.cfg.BatchInterval, n.cfg.BatchEntries) {
		return nil
	}
	return n.commitState()
}

// peek runs fn on the latest applied state without committing: in the open
// batch under its lock when there is one (fn must only read and be quick:
// apply waits for it), else in a read transaction. For small reads that
// run often, like the members bucket.
func (s *stateDB) peek(fn func(tx *bolt.Tx) error) error {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if b.tx != nil {
		return fn(b.tx)
	}
	return s.db.View(fn)
}
