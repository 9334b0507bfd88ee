package raftstore

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// entryFormatCommand is the only Entry.format this binary writes and knows:
// the payload is opaque bytes for the StateMachine.
const entryFormatCommand = 1

// applied is one finished proposal of this member, reported to its waiter
// once the transaction holding it has committed.
type appliedResult struct {
	requestID uint64
	result    Result
}

// apply applies committed entries into the state database's batch
// transaction and records the last one as applied in that same
// transaction, so whenever the batch commits, the applied index it makes
// durable matches exactly the entries it holds (batch.go: a crash loses
// only entries the raft log still holds and replays). Entries at or below the
// applied index (replayed after a restart or covered by an installed
// snapshot) change nothing in the database, but their configuration changes
// are still handed to raft, which rebuilds its configuration from the log.
func (n *Node) apply(ents []*raftpb.Entry) (err error) {
	if len(ents) == 0 {
		return nil
	}
	start := time.Now()
	applied := n.applied.Load()
	var (
		results    []appliedResult
		memberOps  []func()
		last, term uint64
		fresh      int // entries not applied before
	)
	n.stateMu.RLock()
	st := n.state
	n.stateMu.RUnlock()
	tx, err := st.begin()
	if err != nil {
		return fmt.Errorf("apply entries from %d: %w", ents[0].GetIndex(), err)
	}
	done := false
	defer func() {
		if !done {
			st.abort(err)
		}
	}()

	for _, e := range ents {
		skip := e.GetIndex() <= applied
		switch e.GetType() {
		case raftpb.EntryNormal:
			if skip || len(e.GetData()) == 0 { // empty: a new leader's no-op
				break
			}
			env := &raftstorev1.Entry{}
			if err := proto.Unmarshal(e.GetData(), env); err != nil {
				return fmt.Errorf("apply entry %d: decode envelope: %w", e.GetIndex(), err)
			}
			if env.GetFormat() != entryFormatCommand {
				return fmt.Errorf("apply entry %d: unknown entry format %d (written by a newer tokenstore? upgrade this member)", e.GetIndex(), env.GetFormat())
			}
			res, err := n.sm.Apply(tx, e.GetIndex(), env.GetPayload())
			if err != nil {
				return fmt.Errorf("apply entry %d: %w", e.GetIndex(), err)
			}
			if env.GetProposer() == n.cfg.ID && env.GetRequestId() != 0 {
				results = append(results, appliedResult{env.GetRequestId(), Result{Index: e.GetIndex(), Value: res}})
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("apply entry %d: decode conf change: %w", e.GetIndex(), err)
			}
			n.confState = n.raft.ApplyConfChange(&cc)
			n.publishConfState()
			if skip {
				break
			}
			name := memberName(tx, &cc) // before a removal deletes it
			op, err := n.applyMembership(tx, &cc)
			if err != nil {
				return fmt.Errorf("apply entry %d: %w", e.GetIndex(), err)
			}
			memberOps = append(memberOps, func() { n.logMembershipChange(e.GetIndex(), &cc, name) })
			if op != nil {
				memberOps = append(memberOps, op)
			}
			if cc.GetId() != 0 {
				results = append(results, appliedResult{cc.GetId(), Result{Index: e.GetIndex()}})
			}
		default:
			return fmt.Errorf("apply entry %d: unsupported entry type %v", e.GetIndex(), e.GetType())
		}
		if !skip {
			last, term = e.GetIndex(), e.GetTerm()
			fresh++
		}
	}
	if last == 0 { // everything was a replay
		done = true
		st.applied(0, 0)
		return nil
	}
	if err = writeApplied(tx, last, term, n.confState); err != nil {
		return fmt.Errorf("record applied index %d: %w", last, err)
	}
	done = true
	st.applied(last, fresh)
	if c, ok := n.sm.(Committer); ok {
		c.Committed(last)
	}
	n.applied.Store(last)
	n.appliedTerm.Store(term)
	for _, op := range memberOps {
		op()
	}
	n.notifyApplied()
	n.proposals.deliver(results)
	n.metrics.EntriesApplied.Add(uint64(fresh))
	n.metrics.ApplyDuration.Observe(time.Since(start))
	return nil
}

// applyMembership records a membership change in the members bucket and
// returns the transport update to make once it is durable.
func (n *Node) applyMembership(tx *bolt.Tx, cc *raftpb.ConfChange) (func(), error) {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		m := &raftstorev1.Member{}
		if len(cc.GetContext()) > 0 {
			if err := proto.Unmarshal(cc.GetContext(), m); err != nil {
				return nil, fmt.Errorf("decode member of conf change: %w", err)
			}
		}
		m.Id = id
		if err := putMember(tx, m); err != nil {
			return nil, fmt.Errorf("record member %016x: %w", id, err)
		}
		if id == n.cfg.ID || m.GetPeerAddress() == "" {
			return nil, nil
		}
		return func() { n.trans.AddPeer(id, m.GetPeerAddress()) }, nil
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if err := deleteMember(tx, id); err != nil {
			return nil, fmt.Errorf("remove member %016x: %w", id, err)
		}
		if id == n.cfg.ID {
			return nil, nil
		}
		return func() { n.trans.RemovePeer(id) }, nil
	}
	return nil, nil
}

// logMembershipChange writes the one line of a membership change, once it is
// durable, on every member (raft's own lines about it are at debug).
func (n *Node) logMembershipChange(index uint64, cc *raftpb.ConfChange, name string) {
	change := map[raftpb.ConfChangeType]string{
		raftpb.ConfChangeType_ConfChangeAddNode:        "voter added or promoted",
		raftpb.ConfChangeType_ConfChangeAddLearnerNode: "learner added",
		raftpb.ConfChangeType_ConfChangeRemoveNode:     "member removed",
		raftpb.ConfChangeType_ConfChangeUpdateNode:     "member updated",
	}[cc.GetType()]
	if change == "" {
		change = cc.GetType().String()
	}
	cs := n.confStateCopy()
	n.log.Info("membership changed", "change", change, "name", name, "id", fmt.Sprintf("%016x", cc.GetNodeId()),
		"index", index, "voters", len(cs.GetVoters()), "learners", len(cs.GetLearners()))
}

// memberName is the name of the member a configuration change is about, from
// the change itself or, for a removal, from the members bucket.
func memberName(tx *bolt.Tx, cc *raftpb.ConfChange) string {
	if len(cc.GetContext()) > 0 {
		m := &raftstorev1.Member{}
		if proto.Unmarshal(cc.GetContext(), m) == nil && m.GetName() != "" {
			return m.GetName()
		}
	}
	members, _ := readMembers(tx)
	for _, m := range members {
		if m.GetId() == cc.GetNodeId() {
			return m.GetName()
		}
	}
	return ""
}
