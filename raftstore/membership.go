package raftstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Membership changes. raft applies one configuration change at a time and
// silently turns a change proposed while another is pending into a no-op,
// so every change here is confirmed: propose, wait to see it applied, and
// when it was dropped, look at the membership and propose again until the
// wanted state holds or the caller's deadline passes. Each change is
// idempotent: asking for a membership that already holds succeeds at once.

// ErrMemberNotFound is returned for a change naming an unknown member.
var ErrMemberNotFound = errors.New("raftstore: no such member")

// ErrQuorumAtRisk refuses a removal after which the remaining voters that
// are reachable could not form a quorum.
var ErrQuorumAtRisk = errors.New("raftstore: removal would lose quorum")

// MemberInfo is a member of the replicated membership with its role.
type MemberInfo struct {
	*raftstorev1.Member
	Learner bool
}

// NewMemberID returns a random member id. Ids of members added after
// bootstrap are random so that an id is never reused, even when a name is.
func NewMemberID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Membership returns the members with their roles as applied here.
func (n *Node) Membership() ([]MemberInfo, error) {
	members, err := n.members()
	if err != nil {
		return nil, err
	}
	cs := n.confStateCopy()
	out := make([]MemberInfo, 0, len(members))
	for _, m := range members {
		out = append(out, MemberInfo{Member: m, Learner: slices.Contains(cs.GetLearners(), m.GetId())})
	}
	return out, nil
}

func (n *Node) confStateCopy() *raftpb.ConfState {
	if p := n.confPub.Load(); p != nil {
		return p
	}
	return &raftpb.ConfState{}
}

// AddMember adds m to the cluster (a learner when learner is set) and
// returns once the change is applied on this member. m.Id must be set and
// never used before (see NewMemberID). Adding a member that exists with the
// same id is a no-op.
func (n *Node) AddMember(ctx context.Context, m *raftstorev1.Member, learner bool) error {
	if m.GetId() == 0 || m.GetName() == "" || m.GetPeerAddress() == "" {
		return errors.New("raftstore: a new member needs an id, a name and a peer address")
	}
	typ := raftpb.ConfChangeType_ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	mctx, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.GetId()), Context: mctx}
	return n.changeConf(ctx, cc, func(cs *raftpb.ConfState) bool {
		if learner {
			return slices.Contains(cs.GetLearners(), m.GetId()) || slices.Contains(cs.GetVoters(), m.GetId())
		}
		return slices.Contains(cs.GetVoters(), m.GetId())
	})
}

// PromoteMember makes learner id a voter.
func (n *Node) PromoteMember(ctx context.Context, id uint64) error {
	m, err := n.member(id)
	if err != nil {
		return err
	}
	mctx, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: mctx}
	return n.changeConf(ctx, cc, func(cs *raftpb.ConfState) bool { return slices.Contains(cs.GetVoters(), id) })
}

// RemoveMember removes member id. Unless force is set, it refuses when the
// voters left, counting only those reachable now, would not be a quorum.
func (n *Node) RemoveMember(ctx context.Context, id uint64, force bool) error {
	if _, err := n.member(id); err != nil {
		return err
	}
	if !force {
		if err := n.checkRemovalKeepsQuorum(ctx, id); err != nil {
			return err
		}
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
	return n.changeConf(ctx, cc, func(cs *raftpb.ConfState) bool {
		return !slices.Contains(cs.GetVoters(), id) && !slices.Contains(cs.GetLearners(), id)
	})
}

func (n *Node) checkRemovalKeepsQuorum(ctx context.Context, id uint64) error {
	cs := n.confStateCopy()
	if !slices.Contains(cs.GetVoters(), id) {
		return nil // removing a learner never affects quorum
	}
	var remaining, healthy int
	for _, v := range cs.GetVoters() {
		if v == id {
			continue
		}
		remaining++
		if v == n.cfg.ID {
			healthy++
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		if st, err := n.trans.PeerStatus(qctx, v); err == nil && st.ID == v {
			healthy++
		}
		cancel()
	}
	if remaining == 0 {
		return fmt.Errorf("%w: it is the last voter", ErrQuorumAtRisk)
	}
	if healthy < remaining/2+1 {
		return fmt.Errorf("%w: %d of the %d remaining voters are reachable, a quorum needs %d", ErrQuorumAtRisk, healthy, remaining, remaining/2+1)
	}
	return nil
}

func (n *Node) member(id uint64) (*raftstorev1.Member, error) {
	members, err := n.members()
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.GetId() == id {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: %016x", ErrMemberNotFound, id)
}

// changeConf proposes cc until done holds for the applied configuration.
func (n *Node) changeConf(ctx context.Context, cc *raftpb.ConfChange, done func(*raftpb.ConfState) bool) error {
	for {
		if done(n.confStateCopy()) {
			return nil
		}
		id, w := n.proposals.register()
		cc.Id = proto.Uint64(id)
		if err := n.submit(ctx, func(ctx context.Context) error { return n.raft.ProposeConfChange(ctx, cc) }); err != nil {
			n.proposals.cancel(id)
			return fmt.Errorf("propose membership change: %w", err)
		}
		// A change dropped by raft (another was pending) never shows up;
		// look again after a couple of election timeouts.
		t := time.NewTimer(2 * n.cfg.electionTimeout())
		select {
		case <-w.result:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			n.proposals.cancel(id)
			if done(n.confStateCopy()) {
				return nil
			}
			return fmt.Errorf("membership change not confirmed: %w", ctx.Err())
		case <-n.done:
			t.Stop()
			return n.stoppedErr()
		}
		t.Stop()
		n.proposals.cancel(id)
	}
}

// HandleJoin implements Handler: a new member with an empty data directory
// asks to be added. It is added as a learner that the leader promotes once
// caught up. A name that belongs to an existing member whose process no
// longer answers as that member (its volume was wiped) is replaced: the old
// id is removed and the newcomer added under a new id.
func (n *Node) HandleJoin(ctx context.Context, req *raftstorev1.JoinRequest) (*raftstorev1.JoinResponse, error) {
	if req.GetClusterId() != 0 && req.GetClusterId() != n.cfg.ClusterID {
		return nil, fmt.Errorf("this member belongs to cluster %016x, not %016x", n.cfg.ClusterID, req.GetClusterId())
	}
	members, err := n.Membership()
	if err != nil {
		return nil, err
	}
	var newcomer *raftstorev1.Member
	for _, m := range members {
		if m.GetName() != req.GetName() {
			continue
		}
		if m.GetId() == n.cfg.ID {
			return nil, fmt.Errorf("member %q is this member, which is alive", req.GetName())
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := n.trans.PeerStatus(qctx, m.GetId())
		cancel()
		if err == nil && st.ID == m.GetId() {
			return nil, fmt.Errorf("member %q (%016x) is alive at %s; refusing to replace it", req.GetName(), m.GetId(), m.GetPeerAddress())
		}
		if req.GetPreadded() && m.GetPeerAddress() == req.GetPeerAddress() {
			// Added beforehand (tokenctl member add): hand out its id.
			newcomer = m.Member
			break
		}
		n.log.Info("replacing member that rejoined with an empty data directory", "name", m.GetName(), "old_id", fmt.Sprintf("%016x", m.GetId()))
		if err := n.RemoveMember(ctx, m.GetId(), true); err != nil {
			return nil, fmt.Errorf("remove the old %q: %w", m.GetName(), err)
		}
	}
	if newcomer == nil {
		newcomer = &raftstorev1.Member{Name: req.GetName(), Id: NewMemberID(), PeerAddress: req.GetPeerAddress(), AutoPromote: true}
	}
	if !slices.ContainsFunc(members, func(m MemberInfo) bool { return m.GetId() == newcomer.GetId() }) {
		if err := n.AddMember(ctx, newcomer, true); err != nil {
			return nil, err
		}
	}
	all, err := n.members()
	if err != nil {
		return nil, err
	}
	return &raftstorev1.JoinResponse{MemberId: newcomer.GetId(), Members: all, ClusterId: n.cfg.ClusterID}, nil
}

// promoteLoop runs on every member and acts on the leader: a learner that
// joined by itself becomes a voter once it is within CatchUpEntries/10
// entries of the leader's log.
func (n *Node) promoteLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.electionTimeout())
	defer t.Stop()
	for {
		select {
		case <-n.stopc:
			return
		case <-t.C:
		}
		if n.leader.Load() != n.cfg.ID {
			continue
		}
		st := n.raft.Status()
		last := st.HardState.GetCommit()
		members, err := n.Membership()
		if err != nil {
			continue
		}
		for _, m := range members {
			if !m.Learner || !m.GetAutoPromote() {
				continue
			}
			pr, ok := st.Progress[m.GetId()]
			if !ok || pr.Match+n.cfg.CatchUpEntries/10 < last || !pr.RecentActive {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*n.cfg.electionTimeout())
			err := n.PromoteMember(ctx, m.GetId())
			cancel()
			if err != nil {
				n.log.Warn("promoting caught-up learner failed", "member", m.GetName(), "err", err)
				continue
			}
			n.log.Info("promoted caught-up learner to voter", "member", m.GetName(), "id", fmt.Sprintf("%016x", m.GetId()))
		}
	}
}
