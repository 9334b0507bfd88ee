// Package lastused keeps tokens' lastUsedAt as a leader-batched max
// register. Recording a use is a lock-free in-memory max on the
// authentication path; it never fails, never waits and does no I/O.
//
// Every member keeps its pending uses (token id -> latest use) in a
// Tracker. Once per interval a follower sends its pending maxima to the
// leader; the leader merges them into its own and proposes at most one
// RecordLastUsed entry (split only past MaxPerEntry uses). Applying it sets
// lastUsedAt = max(stored, reported), which is commutative and idempotent,
// so re-sent, duplicated or reordered reports are harmless. A use stays
// pending until the member sees a stored value at least as new, and is
// re-sent every interval until then, to whichever member leads: a leader
// change loses at most what the old leader alone held.
//
// Memory is bounded by MaxPending distinct tokens; uses of further tokens
// are dropped and counted (the existing entries keep taking newer times).
//
// Concurrency: Record and Merge are safe from any goroutine; Run is called
// once and owns the flushing.
package lastused

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// retired marks a pending slot being removed; a writer that sees it starts
// over with a fresh slot.
const retired = -1

// Config configures a Tracker.
type Config struct {
	// Interval between flushes (default 1s).
	Interval time.Duration
	// Granularity: a use within this of the stored or pending time is not
	// recorded again, so a hot token costs one atomic load per use.
	Granularity time.Duration
	// MaxPending bounds the tokens with pending uses (default 100000).
	MaxPending int
	// MaxPerEntry bounds the uses in one raft entry (default 10000).
	MaxPerEntry int

	// Stored returns a token's applied lastUsedAt and whether it exists.
	Stored func(id string) (int64, bool)
	// IsLeader reports whether this member leads.
	IsLeader func() bool
	// Propose replicates one RecordLastUsed entry (leader only).
	Propose func(ctx context.Context, r *raftstorev1.RecordLastUsed) error
	// Report sends pending uses to the leader (followers).
	Report func(ctx context.Context, r *raftstorev1.RecordLastUsed) error
	// EntryProposed, when set, observes the uses in each proposed entry.
	EntryProposed func(uses int)
	Logger        *slog.Logger
}

// Tracker holds pending uses. Create it with New.
type Tracker struct {
	cfg     Config
	pending sync.Map // string -> *atomic.Int64 (unix nanoseconds)
	count   atomic.Int64

	dropped  atomic.Uint64
	received atomic.Uint64
	proposed atomic.Uint64
	failed   atomic.Uint64
}

// New returns a Tracker; call Run to start flushing.
func New(cfg Config) *Tracker {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100000
	}
	if cfg.MaxPerEntry <= 0 {
		cfg.MaxPerEntry = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Tracker{cfg: cfg}
}

// Record notes that token id was used at time at (unix nanoseconds); stored
// is its applied lastUsedAt. It never blocks and never fails.
func (t *Tracker) Record(id string, at, stored int64) {
	gran := int64(t.cfg.Granularity)
	if at <= stored || at < stored+gran {
		return
	}
	for {
		v, ok := t.pending.Load(id)
		if !ok {
			if t.count.Load() >= int64(t.cfg.MaxPending) {
				t.dropped.Add(1)
				return
			}
			p := new(atomic.Int64)
			p.Store(at)
			// Clone: id may point into the caller's bearer token, whose
			// secret must not be kept alive by this map.
			actual, loaded := t.pending.LoadOrStore(strings.Clone(id), p)
			if !loaded {
				t.count.Add(1)
				return
			}
			v = actual
		}
		p := v.(*atomic.Int64)
		for {
			cur := p.Load()
			if cur == retired {
				t.pending.CompareAndDelete(id, p)
				break // start over with a fresh slot
			}
			if at <= cur || at < cur+gran {
				return
			}
			if p.CompareAndSwap(cur, at) {
				return
			}
		}
	}
}

// Merge takes uses reported by another member.
func (t *Tracker) Merge(r *raftstorev1.RecordLastUsed) {
	t.received.Add(1)
	for _, u := range r.GetUses() {
		stored, ok := t.cfg.Stored(u.GetId())
		if !ok {
			// Not applied here yet (or gone); the reporter keeps it
			// pending and re-sends.
			continue
		}
		t.Record(u.GetId(), u.GetUnixNano(), stored)
	}
}

// collect retires uses already applied (or of tokens that are gone) and
// returns the rest.
func (t *Tracker) collect() []*raftstorev1.LastUsed {
	var out []*raftstorev1.LastUsed
	t.pending.Range(func(k, v any) bool {
		id, p := k.(string), v.(*atomic.Int64)
		cur := p.Load()
		if cur == retired {
			return true
		}
		stored, ok := t.cfg.Stored(id)
		if !ok || stored >= cur {
			if p.CompareAndSwap(cur, retired) {
				t.pending.CompareAndDelete(id, p)
				t.count.Add(-1)
			}
			return true
		}
		out = append(out, &raftstorev1.LastUsed{Id: id, UnixNano: cur})
		return true
	})
	return out
}

// Run flushes every interval until ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var inflight atomic.Bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		uses := t.collect()
		if len(uses) == 0 {
			continue
		}
		if !t.cfg.IsLeader() {
			rctx, cancel := context.WithTimeout(ctx, t.cfg.Interval)
			if err := t.cfg.Report(rctx, &raftstorev1.RecordLastUsed{Uses: uses}); err != nil {
				t.failed.Add(1)
				t.cfg.Logger.Debug("lastUsedAt report to leader failed; kept for the next interval", "tokens", len(uses), "err", err)
			}
			cancel()
			continue
		}
		// One proposal per interval: skip while the last is in flight.
		if !inflight.CompareAndSwap(false, true) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Store(false)
			for len(uses) > 0 {
				n := min(len(uses), t.cfg.MaxPerEntry)
				pctx, cancel := context.WithTimeout(ctx, 5*t.cfg.Interval)
				err := t.cfg.Propose(pctx, &raftstorev1.RecordLastUsed{Uses: uses[:n]})
				cancel()
				if err != nil {
					t.failed.Add(1)
					t.cfg.Logger.Debug("lastUsedAt proposal failed; kept for the next interval", "tokens", n, "err", err)
					return
				}
				t.proposed.Add(1)
				if t.cfg.EntryProposed != nil {
					t.cfg.EntryProposed(n)
				}
				uses = uses[n:]
			}
		}()
	}
}

// Stats are the tracker's counters, for metrics.
type Stats struct {
	Pending         int64
	Dropped         uint64
	ReportsReceived uint64
	EntriesProposed uint64
	Failures        uint64
}

// Stats returns the current counters.
func (t *Tracker) Stats() Stats {
	return Stats{
		Pending: t.count.Load(), Dropped: t.dropped.Load(), ReportsReceived: t.received.Load(),
		EntriesProposed: t.proposed.Load(), Failures: t.failed.Load(),
	}
}
