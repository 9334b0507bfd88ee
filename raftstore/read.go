package raftstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
)

// ErrNotConfirmed is returned when this member cannot confirm that it is
// caught up with the leader (no quorum reachable, election in progress for
// longer than the staleness bound). Reads fail closed on it.
var ErrNotConfirmed = errors.New("raftstore: cannot confirm this member is up to date")

// reads batches ReadIndex rounds. One round serves every linearizable read
// that was waiting when it started, and each completed round also refreshes
// the bounded-staleness confirmation.
type reads struct {
	trigger chan struct{}
	mu      sync.Mutex
	pending []chan error
	// inflight maps a round's request context to the channel its ReadState
	// index is delivered on.
	inflight map[string]chan uint64
}

func (r *reads) init() {
	r.trigger = make(chan struct{}, 1)
	r.inflight = make(map[string]chan uint64)
}

// deliver hands raft's ReadStates to the rounds waiting for them.
func (r *reads) deliver(states []raft.ReadState) {
	if len(states) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range states {
		if ch, ok := r.inflight[string(s.RequestCtx)]; ok {
			ch <- s.Index
			delete(r.inflight, string(s.RequestCtx))
		}
	}
}

// LinearizableRead returns once this member has applied everything that was
// committed when the call was made (a ReadIndex round confirmed by a quorum).
// Reads of local state after it returns are linearizable.
func (n *Node) LinearizableRead(ctx context.Context) error {
	ch := make(chan error, 1)
	n.reads.mu.Lock()
	n.reads.pending = append(n.reads.pending, ch)
	n.reads.mu.Unlock()
	select {
	case n.reads.trigger <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no quorum confirmed a read index in time: %w", ctx.Err())
	case <-n.done:
		return n.stoppedErr()
	}
}

// neverConfirmed is confirmed's value until the first ReadIndex round
// completes: an hour before the node started, so it is always stale.
const neverConfirmed = -int64(time.Hour)

// BoundedReadCheck reports whether local state may serve a bounded read:
// nil when a ReadIndex round that started at most MaxStaleness ago has
// completed, so everything committed before then is applied here.
func (n *Node) BoundedReadCheck() error {
	confirmed := n.confirmed.Load()
	age := time.Since(n.base) - time.Duration(confirmed)
	if age <= n.cfg.MaxStaleness {
		return nil
	}
	if confirmed == neverConfirmed {
		return fmt.Errorf("%w: not yet confirmed since this member started %v ago (max staleness %v)", ErrNotConfirmed, time.Since(n.base).Round(time.Millisecond), n.cfg.MaxStaleness)
	}
	return fmt.Errorf("%w: last confirmed %v ago (max staleness %v)", ErrNotConfirmed, age.Round(time.Millisecond), n.cfg.MaxStaleness)
}

// refreshInterval is how often an idle member confirms it is caught up: a
// fraction of the staleness bound, so a few lost rounds do not expire it.
func (n *Node) refreshInterval() time.Duration {
	d := n.cfg.MaxStaleness / 10
	if d < 20*time.Millisecond {
		d = 20 * time.Millisecond
	}
	if d > time.Second {
		d = time.Second
	}
	return d
}

// readLoop runs ReadIndex rounds: when linearizable reads wait, and
// periodically to keep the bounded-read confirmation fresh.
func (n *Node) readLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.refreshInterval())
	defer tick.Stop()
	for {
		select {
		case <-n.reads.trigger:
		case <-tick.C:
		case <-n.stopc:
			n.reads.mu.Lock()
			for _, ch := range n.reads.pending {
				ch <- ErrStopped
			}
			n.reads.pending = nil
			n.reads.mu.Unlock()
			return
		}
		n.reads.mu.Lock()
		batch := n.reads.pending
		n.reads.pending = nil
		n.reads.mu.Unlock()

		start := time.Since(n.base)
		err := n.readIndexRound()
		if err == nil {
			n.confirmed.Store(int64(start))
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}

// readIndexRound asks raft for the commit index confirmed by a quorum and
// waits until it is applied here. It gives up after one election timeout.
func (n *Node) readIndexRound() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.electionTimeout())
	defer cancel()
	go func() {
		select {
		case <-n.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	var rctx [8]byte
	_, _ = rand.Read(rctx[:])
	ch := make(chan uint64, 1)
	n.reads.mu.Lock()
	n.reads.inflight[string(rctx[:])] = ch
	n.reads.mu.Unlock()
	defer func() {
		n.reads.mu.Lock()
		delete(n.reads.inflight, string(rctx[:]))
		n.reads.mu.Unlock()
	}()
	if err := n.raft.ReadIndex(ctx, rctx[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrNotConfirmed, err)
	}
	select {
	case idx := <-ch:
		if err := n.WaitApplied(ctx, idx); err != nil {
			return fmt.Errorf("%w: waiting to apply %d: %v", ErrNotConfirmed, idx, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: no read index from a quorum within %v", ErrNotConfirmed, n.cfg.electionTimeout())
	}
}
