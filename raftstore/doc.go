// Package raftstore is the replicated core of tokenstore: a raft group
// (go.etcd.io/raft/v3) whose log is a write-ahead log (package wal) and
// whose state lives in bbolt, with an opaque application state machine on
// top. It knows nothing about tokens.
//
// # Data directory
//
//	member.json  the member's name, raft id and cluster id, written once;
//	             a directory is never used by another member or cluster.
//	wal/         raft's log, hard state and snapshot metadata: append-only
//	             segment files (package wal; logstore.go adapts it). A
//	             raft.db (format 1, bbolt) from an older binary is migrated
//	             into wal/ on open (logstore.go, logstore_v1.go).
//	raft.db      only the downgrade guard once wal/ exists: a bbolt file
//	             stamped format 2, which binaries from before the WAL
//	             refuse instead of starting without raft state (logguard.go).
//	state.db     the state machine's buckets plus the applied index, term and
//	             configuration (statedb.go).
//
// The log is fdatasynced once for every Ready; state.db in batches (see
// Apply invariants). Both carry a format version; a binary refuses a newer
// format and reads every older one.
//
// # Durability order (raft's contract, go.etcd.io/raft doc.go)
//
// For every Ready the raft loop: on a leader, sends messages while it writes
// (allowed: the leader's own log is not needed for a quorum); installs a
// received snapshot (state.db is replaced and synced before the log records
// the snapshot, so state.db is never behind the log's snapshot); writes
// entries and hard state to the log in one record and one fdatasync; only
// then, on a follower, sends messages; applies committed entries; calls
// Advance.
//
// # Apply invariants
//
// Committed entries are applied into the state database's batch: one
// long-lived write transaction that also records the last applied index,
// term and configuration, and is committed with fsync every BatchInterval
// (100 ms) or BatchEntries (10,000) entries, before a snapshot, before a
// read of the database and on a clean stop (batch.go, like etcd's backend).
// Per Ready only the log is fsynced. The applied index durable in state.db
// is the replay point: the log is compacted only behind a snapshot taken
// right after a batch commit, so it holds every entry after that index, and
// after a crash those entries are applied again, in order, to a state
// machine restored from the same database, giving the same state. Entries
// at or below the recorded index are not applied again (after a restart
// raft replays from its snapshot), but configuration changes among them are
// still handed to raft, which rebuilds its configuration from the log.
// bbolt's NoSync commits are not used: they are not safe against power
// loss however often a synced commit follows (batch.go says why); an
// uncommitted transaction writes nothing to the file.
// StateMachine.Apply must be deterministic; an Apply error stops the member
// rather than let it diverge, and drops the whole open batch.
//
// # Proposals
//
// Any member proposes; raft forwards to the leader. Propose returns after
// the entry is committed and applied on the proposing member
// (read-your-writes there). raft may drop a proposal silently (leader
// change, transfer). A proposal dropped before it entered a log is retried;
// one that may have entered a log is never re-proposed, and the caller gets
// ErrOutcomeUnknown at its deadline: the write may or may not have happened.
//
// # Reads
//
// LinearizableRead batches callers into ReadIndex rounds (raft's ReadOnlySafe:
// a quorum heartbeat per round, no clock assumptions): one round serves every
// caller waiting when it starts, and returns once the read index is applied
// locally. The same rounds run every MaxStaleness/10 on every member; a
// completed round confirms that everything committed when it started is
// applied here. BoundedReadCheck allows a local read while that confirmation
// is younger than MaxStaleness, so a short election causes no failed read,
// and a partitioned member fails closed once the bound passes.
//
// # Snapshots
//
// raft snapshots hold metadata only; the data is state.db itself, streamed
// to a lagging follower from a consistent read transaction (snapshot.go).
// The log is compacted every SnapshotCount entries, keeping CatchUpEntries.
//
// # Concurrency
//
// One goroutine (the raft loop) persists, applies and snapshots; another
// runs read rounds; the Transport runs its own. Every exported method of
// Node is safe for concurrent use. StateMachine methods are called only from
// the raft loop (see StateMachine).
package raftstore
