package raftstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/raftstore/transport"
)

func (c *cluster) startJoiner(m *member, join []*raftstorev1.Member) {
	c.t.Helper()
	l := m.listener
	m.listener = nil
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", m.addr); err != nil {
			c.t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := transport.New(transport.Config{ClusterID: c.cid, LocalID: m.id, Listener: l, Logger: logger})
	m.sm = &kv{}
	node, err := raftstore.Open(raftstore.Config{
		Name: m.name, ID: m.id, ClusterID: c.cid, DataDir: m.dir, JoinMembers: join,
		PeerAddress: m.addr, TickInterval: 20 * time.Millisecond, SnapshotCount: c.snapN, CatchUpEntries: 5,
		StateMachine: m.sm, Transport: &faulty{Transport: tr, self: m.id, net: c.net}, Logger: logger,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	m.node = node
	c.members = append(c.members, m)
}

func roleOf(t *testing.T, n *raftstore.Node, id uint64) string {
	ms, err := n.Membership()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.GetId() == id {
			if m.Learner {
				return "learner"
			}
			return "voter"
		}
	}
	return "absent"
}

// TestJoinCatchUpAutoPromoteAndRemove: a new member joins through
// HandleJoin as a learner, catches up by snapshot, is promoted by the
// leader, and can be removed again; every change is confirmed.
func TestJoinCatchUpAutoPromoteAndRemove(t *testing.T) {
	c := newCluster(t, 3, 10)
	l := c.leader()
	var last raftstore.Result
	for i := 0; i < 40; i++ {
		last = put(t, l, "k"+string(rune('a'+i%26)), "v")
	}
	probe := mustListen(t) // n4's peer listener, open until it starts
	addr := probe.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Ask a follower: HandleJoin works from any member.
	f := c.follower()
	resp, err := f.node.HandleJoin(ctx, &raftstorev1.JoinRequest{ClusterId: c.cid, Name: "n4", PeerAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	if got := roleOf(t, f.node, resp.GetMemberId()); got != "learner" {
		t.Fatalf("joined member is %s, want learner", got)
	}
	// A member added beforehand by an operator takes the assigned id.
	again, err := f.node.HandleJoin(ctx, &raftstorev1.JoinRequest{Name: "n4", PeerAddress: addr, Preadded: true})
	if err != nil || again.GetMemberId() != resp.GetMemberId() {
		t.Fatalf("preadded join: id %016x err %v, want id %016x", again.GetMemberId(), err, resp.GetMemberId())
	}
	if _, err := f.node.HandleJoin(ctx, &raftstorev1.JoinRequest{ClusterId: c.cid + 1, Name: "n5", PeerAddress: addr}); err == nil {
		t.Fatal("join with another cluster id accepted")
	}
	m4 := &member{name: "n4", id: resp.GetMemberId(), dir: filepath.Join(t.TempDir(), "n4"), addr: addr, listener: probe}
	c.startJoiner(m4, resp.GetMembers())
	waitApplied(t, m4, last.Index)
	if m4.sm.len() == 0 {
		t.Fatal("joined member has no data")
	}
	// Promotion happens without anyone asking.
	deadline := time.Now().Add(10 * time.Second)
	for roleOf(t, l.node, m4.id) != "voter" {
		if time.Now().After(deadline) {
			t.Fatal("caught-up learner not promoted within 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling the applied configuration
	}
	r := put(t, m4, "from", "n4")
	for _, m := range c.members {
		waitApplied(t, m, r.Index)
	}
	// Remove it again; removing twice is a confirmed no-op.
	if err := l.node.RemoveMember(ctx, m4.id, false); err != nil {
		t.Fatal(err)
	}
	if err := l.node.RemoveMember(ctx, m4.id, false); !errors.Is(err, raftstore.ErrMemberNotFound) {
		t.Fatalf("second removal: %v, want ErrMemberNotFound", err)
	}
	ms, _ := l.node.Membership()
	if slices.ContainsFunc(ms, func(m raftstore.MemberInfo) bool { return m.GetId() == m4.id }) {
		t.Fatal("removed member still listed")
	}
}

// TestRemovalThatLosesQuorumIsRefused: with one voter down, removing a
// healthy one would leave a two-voter cluster with one reachable voter.
func TestRemovalThatLosesQuorumIsRefused(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	var down, healthy *member
	for _, m := range c.members {
		if m != l {
			if down == nil {
				down = m
			} else {
				healthy = m
			}
		}
	}
	c.stop(down)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.node.RemoveMember(ctx, healthy.id, false); !errors.Is(err, raftstore.ErrQuorumAtRisk) {
		t.Fatalf("removing a healthy voter with another down: %v, want ErrQuorumAtRisk", err)
	}
	// Removing the dead one is fine and restores failure tolerance.
	if err := l.node.RemoveMember(ctx, down.id, false); err != nil {
		t.Fatalf("removing the dead voter: %v", err)
	}
}

// TestForceNewClusterKeepsCommittedData: after quorum loss, the survivor
// restarts as a one-member cluster with everything committed.
func TestForceNewClusterKeepsCommittedData(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	var last raftstore.Result
	for i := 0; i < 10; i++ {
		last = put(t, l, "k"+string(rune('a'+i)), "v")
	}
	s := c.follower()
	waitApplied(t, s, last.Index)
	for _, m := range c.members {
		if m.node != nil {
			c.stop(m)
		}
	}
	l2 := mustListen(t)
	tr := transport.New(transport.Config{ClusterID: c.cid, LocalID: s.id, Listener: l2})
	s.sm = &kv{}
	node, err := raftstore.Open(raftstore.Config{
		Name: s.name, ID: s.id, ClusterID: c.cid, DataDir: s.dir, ForceNewCluster: true,
		TickInterval: 20 * time.Millisecond, StateMachine: s.sm, Transport: tr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.node = node
	c.members = []*member{s}
	if got := c.leader(); got != s {
		t.Fatal("survivor did not become leader of its own cluster")
	}
	r := put(t, s, "after", "recovery")
	if s.sm.len() != 11 || r.Index <= last.Index {
		t.Fatalf("recovered member has %d keys (want 11), index %d", s.sm.len(), r.Index)
	}
	ms, _ := s.node.Membership()
	if len(ms) != 1 || ms[0].GetId() != s.id {
		t.Fatalf("membership after force-new-cluster: %v", ms)
	}
}
