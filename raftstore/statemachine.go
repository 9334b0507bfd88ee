package raftstore

import (
	bolt "go.etcd.io/bbolt"
)

// StateMachine is the application state a Node replicates. Its durable state
// lives in buckets of the state database that the Node hands it; the Node
// owns the database, the applied index and snapshots.
//
// Concurrency: Init, Apply and Restore are called from one goroutine, the
// node's apply loop, never concurrently with each other. The state machine's
// own readers (for example an in-memory index used to answer queries) run
// concurrently with Apply; guarding that in-memory state is the state
// machine's job.
type StateMachine interface {
	// Init runs once when the state database is opened or replaced, in a
	// writable transaction: create buckets, migrate an older layout.
	Init(tx *bolt.Tx) error

	// Apply applies one committed entry's payload within tx, the transaction
	// that also records index as applied. It must be deterministic: the same
	// payload on the same state gives the same change on every member (no
	// clock, no randomness, no I/O but tx).
	//
	// result is handed to the caller of Propose on the proposing member; a
	// deterministic refusal ("already exists") belongs in result. A non-nil
	// err means the member cannot go on (an undecodable payload, a storage
	// failure): the node stops rather than diverge.
	//
	// In-memory changes made during Apply should stay private until
	// Committed is called (see Committer), so a reader never sees state
	// that does not match a revision.
	Apply(tx *bolt.Tx, index uint64, payload []byte) (result any, err error)

	// Restore rebuilds in-memory state from the state database: at start and
	// after a snapshot from the leader replaced the database.
	Restore(tx *bolt.Tx) error
}

// Committer is implemented by a StateMachine whose in-memory state is
// published in steps: Committed(index) is called, on the apply loop, once
// every entry up to index is applied to the state database's open batch
// transaction (and after Restore, with the restored index), before the node
// reports index as applied. The batch may commit later: the entries are
// durable in the raft log, and after a crash the node restores the state
// machine from the database and applies them again. A state machine publishes its staged changes there and can stamp
// answers with exactly the revision they were computed at.
type Committer interface {
	Committed(index uint64)
}
