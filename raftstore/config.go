package raftstore

import (
	"errors"
	"log/slog"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Config configures a Node. Zero durations and counts take the defaults
// documented on each field.
type Config struct {
	// Name and ID identify this member; ID is never reused for another member.
	Name string
	ID   uint64
	// ClusterID identifies the raft group; peers of another cluster are refused.
	ClusterID uint64
	// DataDir holds member.json, wal/ (the raft log) and state.db.
	DataDir string
	// InitialCluster is the membership a new data directory bootstraps with
	// (it must include this member). It is ignored once the directory holds
	// raft state.
	InitialCluster []*raftstorev1.Member
	// JoinMembers, when set for a new data directory, joins an existing
	// cluster (this member must already have been added to it) instead of
	// bootstrapping: the node starts empty and the leader catches it up.
	JoinMembers []*raftstorev1.Member
	// ForceNewCluster turns an existing data directory into a one-member
	// cluster (disaster recovery after permanent quorum loss): committed
	// entries are kept, uncommitted ones dropped, every other member removed.
	ForceNewCluster bool
	// PeerAddress and ClientAddress are reported in status answers.
	PeerAddress   string
	ClientAddress string

	// TickInterval is raft's logical clock (default 100ms). Elections time
	// out after ElectionTicks ticks (default 10), heartbeats go every
	// HeartbeatTicks (default 1).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int

	// SnapshotCount is how many applied entries trigger a new snapshot and
	// log compaction (default 10000). CatchUpEntries entries are kept behind
	// the snapshot so slightly lagging followers catch up from the log
	// (default 5000).
	SnapshotCount  uint64
	CatchUpEntries uint64

	// BatchInterval and BatchEntries bound how long, and over how many
	// entries, applied entries stay in the state database's open batch
	// transaction before it is committed with fsync (default 100ms and
	// 10000, etcd's backend batch). Only the raft log is fsynced per batch of
	// proposals; a crash loses nothing, the log replays (batch.go).
	BatchInterval time.Duration
	BatchEntries  int

	// MaxStaleness bounds how long ago this member must have confirmed that
	// it has applied everything the leader had committed, for bounded reads
	// (default 5s).
	MaxStaleness time.Duration

	// MaxProposalBytes bounds one proposal (default 1.5 MiB).
	MaxProposalBytes int

	// ClockStatus, when set, is this member's clock as reported in its
	// MemberStatus (server/clock measures it; raftstore only carries it).
	// Called from any goroutine; must not block.
	ClockStatus func() *raftstorev1.ClockStatus

	// TestSyncDelay (tests only) slows every fdatasync of the raft log by
	// this much, as a slow disk would (fault campaigns).
	TestSyncDelay time.Duration

	// Features name the optional replicated operations the state machine
	// applies, reported in MemberStatus so that a leader proposes one only
	// once every member can apply it (a rolling upgrade in progress).
	Features []string

	StateMachine StateMachine
	Transport    Transport
	Logger       *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Name == "" || out.ID == 0 || out.ClusterID == 0 {
		return out, errors.New("raftstore: Name, ID and ClusterID are required")
	}
	if out.DataDir == "" {
		return out, errors.New("raftstore: DataDir is required")
	}
	if out.StateMachine == nil || out.Transport == nil {
		return out, errors.New("raftstore: StateMachine and Transport are required")
	}
	if out.TickInterval <= 0 {
		out.TickInterval = 100 * time.Millisecond
	}
	if out.ElectionTicks <= 0 {
		out.ElectionTicks = 10
	}
	if out.HeartbeatTicks <= 0 {
		out.HeartbeatTicks = 1
	}
	if out.SnapshotCount == 0 {
		out.SnapshotCount = 10000
	}
	if out.CatchUpEntries == 0 {
		out.CatchUpEntries = 5000
	}
	if out.BatchInterval <= 0 {
		out.BatchInterval = 100 * time.Millisecond
	}
	if out.BatchEntries <= 0 {
		out.BatchEntries = 10000
	}
	if out.MaxStaleness <= 0 {
		out.MaxStaleness = 5 * time.Second
	}
	if out.MaxProposalBytes <= 0 {
		out.MaxProposalBytes = 3 << 19
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}

// electionTimeout is the wall time of one election timeout.
func (c *Config) electionTimeout() time.Duration {
	return time.Duration(c.ElectionTicks) * c.TickInterval
}
