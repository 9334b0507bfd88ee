package raftstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// ErrOutcomeUnknown is returned when a proposal was handed to raft but no
// outcome was seen before the caller's deadline: it may or may not have been
// applied. raft drops proposals silently (for example during a leader
// change), so a caller must treat this as "maybe applied".
var ErrOutcomeUnknown = errors.New("raftstore: proposal outcome unknown")

// ErrTooLarge is returned for a proposal over Config.MaxProposalBytes.
var ErrTooLarge = errors.New("raftstore: proposal too large")

// Result is the outcome of an applied proposal.
type Result struct {
	// Index is the raft index the proposal was applied at.
	Index uint64
	// Value is what StateMachine.Apply returned.
	Value any
}

// proposals matches applied entries to the callers waiting for them.
type proposals struct {
	next    atomic.Uint64
	mu      sync.Mutex
	waiters map[uint64]*waiter
}

// waiter is one Propose call waiting for its entry.
type waiter struct {
	// result receives what applying the entry returned; closed when the
	// node stops.
	result chan Result
	// undelivered is signalled when the transport dropped the entry's
	// forwarding to the leader without sending it (ReportUndelivered).
	undelivered chan struct{}
}

func (p *proposals) init(memberID uint64) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	// Request ids only need to be unique among this member's proposals in
	// flight; a random start keeps a restarted member from matching an old
	// entry of its previous life.
	p.next.Store(binary.BigEndian.Uint64(b[:]) >> 1)
	p.waiters = make(map[uint64]*waiter)
}

func (p *proposals) register() (uint64, *waiter) {
	id := p.next.Add(1)
	if id == 0 {
		id = p.next.Add(1)
	}
	w := &waiter{result: make(chan Result, 1), undelivered: make(chan struct{}, 1)}
	p.mu.Lock()
	p.waiters[id] = w
	p.mu.Unlock()
	return id, w
}

// undelivered tells the waiter of request id, if any, that its entry was
// dropped unsent.
func (p *proposals) undelivered(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.waiters[id]; ok {
		select {
		case w.undelivered <- struct{}{}:
		default:
		}
	}
}

func (p *proposals) cancel(id uint64) {
	p.mu.Lock()
	delete(p.waiters, id)
	p.mu.Unlock()
}

func (p *proposals) deliver(rs []appliedResult) {
	if len(rs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rs {
		if w, ok := p.waiters[r.requestID]; ok {
			w.result <- r.result
			delete(p.waiters, r.requestID)
		}
	}
}

func (p *proposals) failAll(error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, w := range p.waiters {
		close(w.result)
		delete(p.waiters, id)
	}
}

// Propose replicates payload and returns once it has been committed and
// applied on this member, with what the state machine returned. Any member
// may propose; raft forwards to the leader.
//
// When no leader is known the proposal is retried until ctx ends (it cannot
// have entered any log). Once raft has taken it, it is proposed again only
// when it is handed back as certainly undelivered (undelivered.go: the
// transport never sent its forwarding to the leader, or the member it
// reached did not step it), so it can never be applied twice; otherwise,
// if ctx ends first, the error wraps ErrOutcomeUnknown.
func (n *Node) Propose(ctx context.Context, payload []byte) (_ Result, err error) {
	defer func() { n.metrics.proposalDone(err) }()
	id, w := n.proposals.register()
	defer n.proposals.cancel(id)
	data, err := proto.Marshal(&raftstorev1.Entry{
		Format:    entryFormatCommand,
		RequestId: id,
		Proposer:  n.cfg.ID,
		Payload:   payload,
	})
	if err != nil {
		return Result{}, fmt.Errorf("encode proposal: %w", err)
	}
	if len(data) > n.cfg.MaxProposalBytes {
		return Result{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxProposalBytes)
	}
	for {
		leaderChanged := n.leaderChanged()
		if err := n.submit(ctx, func(ctx context.Context) error { return n.raft.Propose(ctx, data) }); err != nil {
			return Result{}, err
		}
		select {
		case r, ok := <-w.result:
			if !ok {
				return Result{}, n.stoppedErr()
			}
			return r, nil
		case <-w.undelivered:
			// Handed back: no log holds it. Propose it again once the
			// leader changes, or after a tick (raft forwards to the same
			// leader until an election says otherwise).
			n.metrics.ProposalsResubmitted.Add(1)
			if err := n.pause(ctx, leaderChanged); err != nil {
				return Result{}, err
			}
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%w: %v", ErrOutcomeUnknown, ctx.Err())
		case <-n.done:
			return Result{}, n.stoppedErr()
		}
	}
}

// pause waits for leaderChanged to close or one tick. An error means ctx
// ended (ErrOutcomeUnknown: an earlier attempt may be in flight elsewhere)
// or the node stopped.
func (n *Node) pause(ctx context.Context, leaderChanged <-chan struct{}) error {
	t := time.NewTimer(n.cfg.TickInterval)
	defer t.Stop()
	select {
	case <-leaderChanged:
	case <-t.C:
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, ctx.Err())
	case <-n.done:
		return n.stoppedErr()
	}
	return nil
}

// submit hands a proposal to raft, waiting for a leader while raft refuses
// it because none is known.
func (n *Node) submit(ctx context.Context, step func(context.Context) error) error {
	for {
		ch := n.leaderChanged()
		err := step(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, raft.ErrStopped) {
			return n.stoppedErr()
		}
		if !errors.Is(err, raft.ErrProposalDropped) {
			if ctx.Err() != nil {
				return fmt.Errorf("no leader to take the proposal: %w", ctx.Err())
			}
			return fmt.Errorf("propose: %w", err)
		}
		// Dropped before entering a log: safe to retry once a leader is
		// known (or after a short pause, for a transfer in progress).
		t := time.NewTimer(n.cfg.TickInterval)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("no leader to take the proposal: %w", ctx.Err())
		case <-n.done:
			t.Stop()
			return n.stoppedErr()
		}
		t.Stop()
	}
}
