package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/raftstore/transport"
)

// kv is a test state machine: payload "key=value" sets a key; the result is
// the previous value. It keeps an in-memory copy like a real state machine.
type kv struct {
	mu sync.RWMutex
	m  map[string]string
}

var kvBucket = []byte("kv")

func (s *kv) Init(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(kvBucket)
	return err
}

func (s *kv) Apply(tx *bolt.Tx, _ uint64, payload []byte) (any, error) {
	k, v, ok := strings.Cut(string(payload), "=")
	if !ok {
		return nil, fmt.Errorf("bad payload %q", payload)
	}
	s.mu.Lock()
	prev := s.m[k]
	s.m[k] = v
	s.mu.Unlock()
	return prev, tx.Bucket(kvBucket).Put([]byte(k), []byte(v))
}

func (s *kv) Restore(tx *bolt.Tx) error {
	m := map[string]string{}
	if err := tx.Bucket(kvBucket).ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil }); err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	return nil
}

func (s *kv) get(k string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *kv) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// faulty wraps the real gRPC transport and drops messages to and from
// isolated members: the same interface as production, with faults.
type faulty struct {
	raftstore.Transport
	self uint64
	net  *network
}

// network is the shared partition table of a test cluster.
type network struct {
	mu       sync.Mutex
	isolated map[uint64]bool
}

func (n *network) cut(a, b uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.isolated[a] || n.isolated[b]
}

func (n *network) isolate(id uint64, on bool) {
	n.mu.Lock()
	n.isolated[id] = on
	n.mu.Unlock()
}

func (f *faulty) Send(msgs []*raftpb.Message) {
	var keep []*raftpb.Message
	for _, m := range msgs {
		if !f.net.cut(f.self, m.GetTo()) {
			keep = append(keep, m)
		}
	}
	f.Transport.Send(keep)
}

type member struct {
	name string
	id   uint64
	dir  string
	addr string
	// listener is the peer listener made with the address, held open
	// until the first start: closing it and listening again later let
	// another member's outgoing connection take the port in between
	// ("address already in use").
	listener net.Listener
	sm       *kv
	node     *raftstore.Node
}

type cluster struct {
	t       testing.TB
	members []*member
	initial []*raftstorev1.Member
	cid     uint64
	net     *network
	snapN   uint64
	// batch, when set, is the state database's BatchInterval (and
	// BatchEntries is made large), so applied entries stay uncommitted.
	batch time.Duration
}

func newCluster(t testing.TB, n int, snapshotCount uint64) *cluster {
	t.Helper()
	c := &cluster{t: t, net: &network{isolated: map[uint64]bool{}}, snapN: snapshotCount}
	root := t.TempDir()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		name := "n" + strconv.Itoa(i+1)
		m := &member{name: name, id: raftstore.MemberID("test", name), dir: filepath.Join(root, name), addr: addr, listener: l}
		c.members = append(c.members, m)
		c.initial = append(c.initial, &raftstorev1.Member{Name: name, Id: m.id, PeerAddress: addr})
	}
	c.cid = raftstore.ClusterID("test", c.initial)
	for _, m := range c.members {
		c.start(m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			if m.node != nil {
				m.node.Stop()
			}
		}
	})
	return c
}

func (c *cluster) start(m *member) {
	c.t.Helper()
	l := m.listener
	m.listener = nil
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", m.addr); err != nil {
			c.t.Fatalf("listen %s: %v", m.addr, err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", m.name)
	}
	tr := transport.New(transport.Config{ClusterID: c.cid, LocalID: m.id, Listener: l, Logger: logger})
	m.sm = &kv{}
	node, err := raftstore.Open(raftstore.Config{
		Name: m.name, ID: m.id, ClusterID: c.cid, DataDir: m.dir, InitialCluster: c.initial,
		PeerAddress: m.addr, TickInterval: 20 * time.Millisecond, SnapshotCount: c.snapN, CatchUpEntries: 5,
		MaxStaleness: 2 * time.Second, BatchInterval: c.batch, BatchEntries: batchEntries(c.batch),
		StateMachine: m.sm, Transport: &faulty{Transport: tr, self: m.id, net: c.net}, Logger: logger,
	})
	if err != nil {
		c.t.Fatalf("open %s: %v", m.name, err)
	}
	m.node = node
}

func (c *cluster) stop(m *member) {
	m.node.Stop()
	m.node = nil
}

// leader waits until the running members agree on a leader and returns it.
func (c *cluster) leader() *member {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, m := range c.members {
			if m.node == nil || c.net.cut(m.id, 0) {
				continue
			}
			l := m.node.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != 0 {
			for _, m := range c.members {
				if m.id == lead && m.node != nil {
					return m
				}
			}
		}
		time.Sleep(10 * time.Millisecond) // polling raft state: there is no event to wait on
	}
	c.t.Fatal("no leader elected within 10s")
	return nil
}

func (c *cluster) follower() *member {
	l := c.leader()
	for _, m := range c.members {
		if m != l && m.node != nil {
			return m
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// followers2 returns the two members of a three-member cluster other than
// the leader l.
func (c *cluster) followers2(l *member) (f, x *member) {
	for _, m := range c.members {
		switch {
		case m == l:
		case f == nil:
			f = m
		default:
			x = m
		}
	}
	return f, x
}

func put(t *testing.T, m *member, k, v string) raftstore.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := m.node.Propose(ctx, []byte(k+"="+v))
	if err != nil {
		t.Fatalf("propose %s=%s at %s: %v", k, v, m.name, err)
	}
	return r
}

func waitApplied(t *testing.T, m *member, idx uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.node.WaitApplied(ctx, idx); err != nil {
		t.Fatalf("%s did not apply %d (at %d): %v", m.name, idx, m.node.AppliedIndex(), err)
	}
}

func TestWriteThroughFollowerIsReadableThere(t *testing.T) {
	c := newCluster(t, 3, 1000)
	f := c.follower()
	r := put(t, f, "a", "1")
	// Read-your-writes: applied on the member that took the write.
	if got, _ := f.sm.get("a"); got != "1" {
		t.Fatalf("follower state after its own write: a=%q", got)
	}
	if f.node.AppliedIndex() < r.Index {
		t.Fatalf("applied %d < result index %d", f.node.AppliedIndex(), r.Index)
	}
	if r2 := put(t, f, "a", "2"); r2.Value.(string) != "1" {
		t.Fatalf("second write saw previous value %v, want 1", r2.Value)
	}
	for _, m := range c.members {
		waitApplied(t, m, r.Index+1)
		if got, _ := m.sm.get("a"); got != "2" {
			t.Fatalf("%s: a=%q, want 2", m.name, got)
		}
	}
}

func TestLinearizableReadAndBoundedConfirmation(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	r := put(t, l, "k", "v")
	for _, m := range c.members {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := m.node.LinearizableRead(ctx); err != nil {
			t.Fatalf("%s linearizable read: %v", m.name, err)
		}
		cancel()
		if m.node.AppliedIndex() < r.Index {
			t.Fatalf("%s applied %d after linearizable read, write was at %d", m.name, m.node.AppliedIndex(), r.Index)
		}
		if err := m.node.BoundedReadCheck(); err != nil {
			t.Fatalf("%s bounded read after a completed round: %v", m.name, err)
		}
	}
}

func TestIsolatedFollowerFailsClosedThenRecovers(t *testing.T) {
	c := newCluster(t, 3, 1000)
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.node.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	c.net.isolate(f.id, true)
	// A linearizable read cannot be confirmed without a quorum.
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := f.node.LinearizableRead(rctx)
	rcancel()
	if err == nil {
		t.Fatal("isolated follower confirmed a linearizable read")
	}
	// Bounded reads fail closed once the staleness bound has passed.
	deadline := time.Now().Add(5 * time.Second)
	for f.node.BoundedReadCheck() == nil {
		if time.Now().After(deadline) {
			t.Fatal("isolated follower still serves bounded reads after 5s (max staleness 2s)")
		}
		time.Sleep(20 * time.Millisecond) // waiting for time itself to pass the bound
	}
	// The majority keeps working.
	var rest *member
	for _, m := range c.members {
		if m != f {
			rest = m
		}
	}
	r := put(t, rest, "during", "partition")
	c.net.isolate(f.id, false)
	waitApplied(t, f, r.Index)
	if got, _ := f.sm.get("during"); got != "partition" {
		t.Fatalf("healed follower: during=%q", got)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := f.node.LinearizableRead(ctx2); err != nil {
		t.Fatalf("healed follower linearizable read: %v", err)
	}
	if err := f.node.BoundedReadCheck(); err != nil {
		t.Fatalf("healed follower bounded read: %v", err)
	}
}

func TestRestartRecoversExactly(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	var last raftstore.Result
	for i := 0; i < 20; i++ {
		last = put(t, l, "k"+strconv.Itoa(i), strconv.Itoa(i))
	}
	f := c.follower()
	waitApplied(t, f, last.Index)
	before := f.node.AppliedIndex()
	c.stop(f)
	c.start(f)
	if got := f.node.AppliedIndex(); got != before {
		t.Fatalf("applied index after restart %d, before %d", got, before)
	}
	if f.sm.len() != 20 {
		t.Fatalf("restored %d keys, want 20", f.sm.len())
	}
	r := put(t, f, "after", "restart")
	for _, m := range c.members {
		waitApplied(t, m, r.Index)
	}
}

func TestSnapshotCatchUpAfterCompaction(t *testing.T) {
	c := newCluster(t, 3, 10) // snapshot every 10 entries, keep 5
	f := c.follower()
	c.stop(f)
	l := c.leader()
	var last raftstore.Result
	for i := 0; i < 60; i++ {
		last = put(t, l, "k"+strconv.Itoa(i), strconv.Itoa(i))
	}
	// Wipe nothing: f restarts with an old log the leader has compacted past.
	c.start(f)
	waitApplied(t, f, last.Index)
	if f.sm.len() != 60 {
		t.Fatalf("caught-up follower has %d keys, want 60", f.sm.len())
	}
	// And it keeps up through the log afterwards, across another restart.
	r := put(t, l, "after", "snapshot")
	waitApplied(t, f, r.Index)
	c.stop(f)
	c.start(f)
	if f.sm.len() != 61 {
		t.Fatalf("after restart %d keys, want 61", f.sm.len())
	}
}

func TestLeaderKilledClusterContinues(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	r := put(t, l, "x", "1")
	c.stop(l)
	nl := c.leader()
	if nl == l {
		t.Fatal("stopped leader still leader")
	}
	r2 := put(t, nl, "y", "2")
	c.start(l)
	waitApplied(t, l, r2.Index)
	for _, m := range c.members {
		waitApplied(t, m, r2.Index)
		if v, _ := m.sm.get("x"); v != "1" {
			t.Fatalf("%s lost x (index %d)", m.name, r.Index)
		}
	}
}

// TestProposalAtFollowerOutlivesTheLeadersDeath proposes at a follower
// right after the leader stopped, before any election: raft forwards the
// proposal to the dead leader, the transport cannot send it and hands it
// back (ReportUndelivered), and the follower proposes it again to the next
// leader instead of waiting out its deadline for an outcome it cannot know.
func TestProposalAtFollowerOutlivesTheLeadersDeath(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	f := c.follower()
	put(t, f, "warm", "1") // the follower's stream to the leader is open
	c.stop(l)
	// Propose once the follower's transport has seen the connection go (as
	// it does within microseconds of a SIGKILL): a message queued before
	// that may have reached the leader and rightly stays "outcome unknown".
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := f.node.PeerStatus(pctx, l.id)
		pcancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still reaches the stopped %s", f.name, l.name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	r, err := f.node.Propose(ctx, []byte("after=1"))
	if err != nil {
		t.Fatalf("propose at %s after the leader %s stopped: %v (after %v)", f.name, l.name, err, time.Since(start))
	}
	t.Logf("applied at index %d after %v; proposals handed to raft again: %d",
		r.Index, time.Since(start).Round(time.Millisecond), f.node.Metrics().ProposalsResubmitted.Load())
	if v, _ := f.sm.get("after"); v != "1" {
		t.Fatalf("%s has after=%q", f.name, v)
	}
}

// TestProposalReachingAMemberWithoutLeaderIsHandedBack delivers a forwarded
// proposal to a member that knows no leader (cut off, in an election), as
// when a follower's proposal reaches a leader that was restarted at once.
// raft there would drop it unseen; the member must hand it back to its
// proposer instead of stepping it.
func TestProposalReachingAMemberWithoutLeaderIsHandedBack(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	f, x := c.followers2(l)
	c.net.isolate(x.id, true)
	deadline := time.Now().Add(10 * time.Second)
	for x.node.Leader() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still follows %016x while cut off", x.name, x.node.Leader())
		}
		time.Sleep(10 * time.Millisecond) // polling raft state: there is no event to wait on
	}
	data, undelivered, err := f.node.PendingProposalForTest([]byte("k=v"))
	if err != nil {
		t.Fatal(err)
	}
	m := &raftpb.Message{Type: raftpb.MessageType_MsgProp.Enum(), From: proto.Uint64(f.id), To: proto.Uint64(x.id),
		Entries: []*raftpb.Entry{{Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}}}
	// Process must not wait for a leader either: raft takes no proposal
	// without one, and the caller is a peer stream's receive loop.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := x.node.Process(ctx, m); err != nil {
		t.Fatalf("Process at %s after %v: %v", x.name, time.Since(start), err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Process at %s blocked for %v", x.name, d)
	}
	select {
	case <-undelivered:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not hand the proposal back to %s", x.name, f.name)
	}
}

// TestProposalDroppedByATransferringLeaderIsHandedBack proposes at a
// follower while the leader is transferring leadership to a member that
// cannot take it (cut off): raft at the leader drops every proposal until
// the transfer times out after an election timeout. The follower's
// proposal must be handed back and proposed again, and so be applied once
// the transfer ends, instead of waiting out its deadline for "outcome
// unknown".
//
// The transfer is asked for at the leader itself, and at the follower (raft
// forwards it to the leader, which must notice it arriving).
func TestProposalDroppedByATransferringLeaderIsHandedBack(t *testing.T) {
	for _, at := range []string{"leader", "follower"} {
		t.Run("transfer asked at the "+at, func(t *testing.T) { testProposalDroppedByATransferringLeader(t, at) })
	}
}

func testProposalDroppedByATransferringLeader(t *testing.T, askAt string) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	f, x := c.followers2(l)
	put(t, f, "warm", "1")
	c.net.isolate(x.id, true)
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer tcancel()
	transferred := make(chan error, 1)
	asked := l
	if askAt == "follower" {
		asked = f
	}
	go func() { transferred <- asked.node.TransferLeadership(tctx, x.id) }()
	deadline := time.Now().Add(5 * time.Second)
	for l.node.LeadTransfereeForTest() != x.id {
		if time.Now().After(deadline) {
			t.Fatalf("%s never started transferring leadership to %s", l.name, x.name)
		}
		time.Sleep(time.Millisecond) // polling raft state: there is no event to wait on
	}
	dropped := l.node.Metrics().ForwardedProposalsDropped.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	r, err := f.node.Propose(ctx, []byte("during=1"))
	if err != nil {
		t.Fatalf("propose at %s while %s transfers leadership: %v (after %v)", f.name, l.name, err, time.Since(start))
	}
	if got := l.node.Metrics().ForwardedProposalsDropped.Load() - dropped; got == 0 {
		t.Errorf("applied at index %d, but %s dropped none of %s's proposals: the transfer was over before the proposal came", r.Index, l.name, f.name)
	}
	t.Logf("applied at index %d after %v; %s dropped %d forwarded proposals, %s resubmitted %d",
		r.Index, time.Since(start).Round(time.Millisecond), l.name, l.node.Metrics().ForwardedProposalsDropped.Load()-dropped,
		f.name, f.node.Metrics().ProposalsResubmitted.Load())
	if v, _ := f.sm.get("during"); v != "1" {
		t.Fatalf("%s has during=%q", f.name, v)
	}
	tcancel()
	if err := <-transferred; err == nil {
		t.Fatalf("leadership went to the cut-off %s", x.name)
	}
}

func TestDataDirOfAnotherMemberIsRefused(t *testing.T) {
	c := newCluster(t, 3, 1000)
	a, b := c.members[0], c.members[1]
	c.leader()
	c.stop(a)
	tr := transport.New(transport.Config{ClusterID: c.cid, LocalID: b.id, Listener: mustListen(t)})
	_, err := raftstore.Open(raftstore.Config{Name: b.name, ID: b.id, ClusterID: c.cid, DataDir: a.dir,
		StateMachine: &kv{}, Transport: tr})
	if err == nil || !strings.Contains(err.Error(), "belongs to member") {
		t.Fatalf("opening n1's data dir as n2: %v", err)
	}
	_, err = raftstore.Open(raftstore.Config{Name: a.name, ID: a.id, ClusterID: c.cid + 1, DataDir: a.dir,
		StateMachine: &kv{}, Transport: tr})
	if err == nil || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Fatalf("opening with another cluster id: %v", err)
	}
}

func mustListen(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestTransferToAnUnreachableMemberFailsWhenRaftAbandonsIt: raft gives up
// a transfer whose transferee does not take over within an election
// timeout; TransferLeadership says so then, not at the caller's deadline.
func TestTransferToAnUnreachableMemberFailsWhenRaftAbandonsIt(t *testing.T) {
	c := newCluster(t, 3, 1000)
	l := c.leader()
	f := c.follower()
	c.net.isolate(f.id, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := l.node.TransferLeadership(ctx, f.id)
	took := time.Since(start)
	if !errors.Is(err, raftstore.ErrTransferAbandoned) {
		t.Fatalf("transfer to an isolated member after %v: %v, want ErrTransferAbandoned", took, err)
	}
	// raft gives up after an election timeout: 10 ticks of 20 ms here.
	if limit := 5 * time.Second; took > limit || took < 180*time.Millisecond {
		t.Fatalf("abandoned transfer reported after %v, want after raft's election timeout (200ms) and well within %v", took, limit)
	}
	if tr := l.node.LeadTransfereeForTest(); tr != 0 {
		t.Fatalf("raft still transfers to %016x", tr)
	}
	if c.leader() != l {
		t.Fatalf("leader changed after an abandoned transfer")
	}
	t.Logf("abandoned transfer reported after %v: %v", took.Round(time.Millisecond), err)
}

// TestUnconfirmedSinceStartSaysSo: a member restarted while cut off has
// never confirmed a read; its refusal says that, not a made-up age.
func TestUnconfirmedSinceStartSaysSo(t *testing.T) {
	c := newCluster(t, 3, 1000)
	f := c.follower()
	c.stop(f)
	c.net.isolate(f.id, true)
	c.start(f)
	err := f.node.BoundedReadCheck()
	if !errors.Is(err, raftstore.ErrNotConfirmed) || !strings.Contains(err.Error(), "not yet confirmed since this member started") {
		t.Fatalf("bounded read check of a member that never confirmed: %v", err)
	}
}
