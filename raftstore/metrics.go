package raftstore

import (
	"math"
	"sync/atomic"
	"time"
)

// Metrics are a Node's counters and latency histograms, kept with atomic
// operations so the raft loop never takes a lock or allocates to count, and
// exported by the caller in whatever form it likes (server/metrics.go turns
// them into Prometheus metrics); raftstore itself depends on no metrics
// library.
//
// Concurrency: each field is written by the goroutine that owns the event
// (mostly the raft loop) and may be read from any goroutine at any time.
// A reader sees every value on its own, not one consistent snapshot of all
// of them: a scrape may see an apply counted before its latency, never a
// torn value.
type Metrics struct {
	// LeaderChanges counts the times this member learned of a new leader
	// (a known leader replacing another or none). A steady cluster stays
	// flat; a climbing count means elections (network, slow disks, CPU
	// starvation).
	LeaderChanges atomic.Uint64
	// ProposalsCommitted counts Propose calls of this member that returned
	// applied; ProposalsFailed those that returned an error (no leader
	// before the deadline, outcome unknown, too large, stopped).
	ProposalsCommitted atomic.Uint64
	ProposalsFailed    atomic.Uint64
	// ProposalsResubmitted counts proposals handed to raft again because
	// they were handed back as certainly undelivered (undelivered.go).
	ProposalsResubmitted atomic.Uint64
	// ForwardedProposalsDropped counts proposals forwarded by other
	// members that raft here refused (a leadership transfer in progress,
	// the uncommitted-entry budget full) and that went back to their
	// proposers.
	ForwardedProposalsDropped atomic.Uint64
	// EntriesApplied counts log entries applied to the state database
	// (replays after a restart not included).
	EntriesApplied atomic.Uint64
	// ApplyDuration is the time to apply one batch of committed entries
	// into the state database's open transaction, in seconds (no fsync:
	// see StateCommitDuration). Apply runs on the raft loop, so this is
	// also the delay it adds between an entry being committed and being
	// visible to reads.
	ApplyDuration Histogram
	// StateCommits counts commits (with fsync) of the state database's
	// batch transaction (batch.go); StateCommitDuration is their duration
	// in seconds.
	StateCommits        atomic.Uint64
	StateCommitDuration Histogram
	// SnapshotsTaken counts local snapshots (log compactions).
	SnapshotsTaken atomic.Uint64
	// SnapshotSends counts snapshot transfers this member started to a
	// lagging peer; SnapshotSendFailures the transfers reported failed to
	// raft (raft retries them later).
	SnapshotSends        atomic.Uint64
	SnapshotSendFailures atomic.Uint64
	// SnapshotsReceived counts state databases received from a leader and
	// stored; SnapshotsInstalled those that then replaced the state (a
	// restore from a peer).
	SnapshotsReceived  atomic.Uint64
	SnapshotsInstalled atomic.Uint64
}

// Metrics returns the node's metrics. The pointer stays valid for the
// node's lifetime, after Stop too.
func (n *Node) Metrics() *Metrics { return &n.metrics }

// Term is the raft term this member last persisted.
func (n *Node) Term() uint64 { return n.term.Load() }

// CommitIndex is the highest log index this member knows to be committed.
// CommitIndex minus AppliedIndex is how far apply lags behind commit.
func (n *Node) CommitIndex() uint64 { return n.commit.Load() }

// ConfirmedAge is how long ago the last completed ReadIndex round started:
// the age of the newest proof that this member had applied everything the
// leader had committed. Bounded reads are served while it is at most
// Config.MaxStaleness; it grows without bound on a partitioned member.
func (n *Node) ConfirmedAge() time.Duration {
	return time.Since(n.base) - time.Duration(n.confirmed.Load())
}

// Voters returns the voter ids of the applied configuration. Unlike
// Membership it does not read the state database, so it is cheap enough for
// every metrics scrape.
func (n *Node) Voters() []uint64 { return append([]uint64(nil), n.confStateCopy().GetVoters()...) }

// Learners returns the learner ids of the applied configuration, as Voters.
func (n *Node) Learners() []uint64 { return append([]uint64(nil), n.confStateCopy().GetLearners()...) }

// proposalDone counts the outcome of one Propose call.
func (m *Metrics) proposalDone(err error) {
	if err != nil {
		m.ProposalsFailed.Add(1)
	} else {
		m.ProposalsCommitted.Add(1)
	}
}

// latencyBounds are the upper bounds, in seconds, of every Histogram: 100µs
// to about 6.5s by factors of 4, wide enough for an fsync on a fast SSD and
// for an apply stalled behind a slow disk.
var latencyBounds = [...]float64{0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384, 6.5536}

// LatencyBuckets returns the upper bounds, in seconds, of the buckets of
// every Histogram.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBounds[:]...) }

// Histogram counts observations into LatencyBuckets with atomics. The zero
// value is ready to use. Observe and Snapshot are safe for concurrent use.
type Histogram struct {
	// counts[i] counts observations in (bound[i-1], bound[i]]; the last
	// one those above every bound.
	counts  [len(latencyBounds) + 1]atomic.Uint64
	sumBits atomic.Uint64 // float64 bits of the sum of observations
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	v := d.Seconds()
	i := 0
	for i < len(latencyBounds) && v > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Snapshot returns the cumulative count of observations at or below each
// bound of LatencyBuckets, the total count and the sum in seconds. The total is the
// sum of the buckets, so the cumulative counts never exceed it.
func (h *Histogram) Snapshot() (cumulative []uint64, count uint64, sum float64) {
	cumulative = make([]uint64, len(latencyBounds))
	for i := range h.counts {
		count += h.counts[i].Load()
		if i < len(cumulative) {
			cumulative[i] = count
		}
	}
	return cumulative, count, math.Float64frombits(h.sumBits.Load())
}
