package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// A proposal made at a follower travels to the leader as a raft MsgProp,
// and raft drops it silently wherever it cannot go on: the transport
// cannot reach the leader, or the member it reaches knows no leader (a
// leader that died and was restarted at once, a member in an election).
// Its proposer would then wait for its deadline and answer "outcome
// unknown". This file hands such proposals back instead, but only where
// it is certain that no log took them: a message the transport never
// wrote to a connection (ReportUndelivered), one that arrived at a member
// that did not step it into raft, or one raft there answered
// ErrProposalDropped (Process). Their proposers
// propose the same entry again (Propose), so nothing is applied twice.

// forwardProposalsDropped is the Forward kind that tells a proposer its
// proposals were handed back; the payload is their request ids, uvarints.
const forwardProposalsDropped = "raftstore/proposals-dropped"

// returnTimeout bounds telling a proposer about a handed-back proposal; a
// proposer that cannot be told waits for its deadline, as before.
const returnTimeout = time.Second

// ReportUndelivered implements Handler: msgs are messages the transport
// dropped without writing them to any connection. Proposals among them
// reached no log; they go back to their proposers.
func (n *Node) ReportUndelivered(msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() == raftpb.MessageType_MsgProp {
			n.returnProposals(m)
		}
	}
}

// stepProposal hands a MsgProp from another member to raft, or back to its
// proposers where raft would drop it.
//
// raft's node takes no proposal while it knows no leader: Step would
// block, holding up every later message of the peer stream it arrived on
// (votes, heartbeats) until a leader is known or the stream broke. So a
// proposal is handed back at once when no leader is known, and when raft
// has not taken it within a tick (a leader lost just now): a message Step
// did not take was not stepped.
//
// A leader transferring leadership (graceful shutdown, `tokenctl leader
// transfer`) drops every proposal until the transfer ends, without a word
// to a caller that does not wait for the step's result. So while a
// transfer may be in progress here (noteTransfer), each normal entry is
// proposed the way Node.Propose does, waiting for raft's answer, and a
// dropped one goes back to its proposer (proposeForwarded). Outside
// transfers the step does not wait for that answer: the wait would
// serialise the peer stream behind the raft loop and cost a third of the
// throughput of writes made at followers (BenchmarkProposeAtFollower).
// The transfer is noted before raft can begin it, and noting it waits for
// proposals being stepped without waiting (transferMu), so none of those
// can meet the transfer in raft.
func (n *Node) stepProposal(ctx context.Context, m *raftpb.Message) error {
	if n.Leader() == 0 {
		n.returnProposals(m)
		return nil
	}
	n.transferMu.RLock()
	if n.mayBeTransferring() && onlyNormalEntries(m) {
		n.transferMu.RUnlock()
		n.proposeForwarded(ctx, m)
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.TickInterval)
	defer cancel()
	err := n.raft.Step(sctx, m)
	// Step returned: raft's loop took m and steps it before it takes
	// anything else, so a transfer noted after this steps after m.
	n.transferMu.RUnlock()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		n.returnProposals(m)
		return nil
	}
	return err
}

// noteTransfer records that raft here may be transferring leadership for
// the next two election timeouts (raft gives up a transfer after one).
// Called before the transfer is stepped into raft: once it returns, every
// forwarded proposal stepped without waiting has been taken by raft (and
// so is stepped before the transfer), and every later one waits for
// raft's answer.
func (n *Node) noteTransfer() {
	n.transferMu.Lock()
	n.transferUntil.Store(int64(time.Since(n.base) + 2*n.cfg.electionTimeout()))
	n.transferMu.Unlock()
}

func (n *Node) mayBeTransferring() bool {
	return int64(time.Since(n.base)) < n.transferUntil.Load()
}

// proposeForwarded proposes m's entries, each waiting for raft's answer,
// and hands back those raft dropped. The waits run in their own goroutine;
// the peer stream waits at most a tick for them (raft answers within
// microseconds once it takes an entry). Past that, raft has just lost its
// leader and will take the entries when it knows the next one, and the
// goroutine reports the answer then.
func (n *Node) proposeForwarded(ctx context.Context, m *raftpb.Message) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range m.GetEntries() {
			// No deadline: raft's node answers once it takes the entry,
			// and returns ErrStopped when it stops.
			err := n.raft.Propose(context.Background(), e.GetData())
			if errors.Is(err, raft.ErrProposalDropped) {
				n.metrics.ForwardedProposalsDropped.Add(1)
				n.returnProposals(&raftpb.Message{Entries: []*raftpb.Entry{e}})
			}
		}
	}()
	t := time.NewTimer(n.cfg.TickInterval)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// onlyNormalEntries reports whether every entry of m is a normal entry,
// which Node.Propose can propose unchanged.
func onlyNormalEntries(m *raftpb.Message) bool {
	if len(m.GetEntries()) == 0 {
		return false
	}
	for _, e := range m.GetEntries() {
		if e.GetType() != raftpb.EntryType_EntryNormal {
			return false
		}
	}
	return true
}

// returnProposals tells the proposers of m's command entries that m was
// not delivered: this member's own waiters directly, other members over
// Forward (asynchronously: the caller may be the transport's or the raft
// loop's goroutine).
func (n *Node) returnProposals(m *raftpb.Message) {
	byProposer := map[uint64][]uint64{}
	for _, e := range m.GetEntries() {
		if e.GetType() != raftpb.EntryType_EntryNormal || len(e.GetData()) == 0 {
			continue
		}
		var env raftstorev1.Entry
		if err := proto.Unmarshal(e.GetData(), &env); err != nil || env.GetFormat() != entryFormatCommand {
			continue
		}
		byProposer[env.GetProposer()] = append(byProposer[env.GetProposer()], env.GetRequestId())
	}
	for proposer, ids := range byProposer {
		if proposer == n.cfg.ID {
			for _, id := range ids {
				n.proposals.undelivered(id)
			}
			continue
		}
		var payload []byte
		for _, id := range ids {
			payload = binary.AppendUvarint(payload, id)
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
			defer cancel()
			if _, err := n.Forward(ctx, proposer, forwardProposalsDropped, payload); err != nil {
				n.log.Debug("cannot hand proposals back to their proposer", "proposer", fmt.Sprintf("%016x", proposer), "err", err)
			}
		}()
	}
}

// handleProposalsDropped is the proposer's side of forwardProposalsDropped.
func (n *Node) handleProposalsDropped(_ context.Context, _ uint64, payload []byte) ([]byte, error) {
	for len(payload) > 0 {
		id, k := binary.Uvarint(payload)
		if k <= 0 {
			return nil, errors.New("malformed request ids")
		}
		n.proposals.undelivered(id)
		payload = payload[k:]
	}
	return nil, nil
}
