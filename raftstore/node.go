package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/internal/durable"
)

// ErrStopped is returned by calls on a node that has stopped.
var ErrStopped = errors.New("raftstore: node stopped")

// Node is one member of a raft group: the raft state machine, its durable
// log, the state database and the loops that drive them. Every exported
// method is safe to call from any goroutine.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  raft.Node
	mem   *raft.MemoryStorage
	logs  *logStore
	sm    StateMachine
	trans Transport
	base  time.Time // origin of the monotonic timestamps stored in atomics

	stateMu sync.RWMutex // guards state (replaced when a snapshot is installed)
	state   *stateDB

	// Owned by the raft loop; confPub is a copy readers may load.
	confState     *raftpb.ConfState
	confPub       atomic.Pointer[raftpb.ConfState]
	snapshotIndex uint64

	applied     atomic.Uint64
	appliedTerm atomic.Uint64
	leader      atomic.Uint64
	term        atomic.Uint64
	commit      atomic.Uint64
	raftState   atomic.Value // raft.StateType
	// confirmed is when (nanoseconds since base) the latest ReadIndex round
	// that completed was started: at that moment this member was up to date.
	confirmed atomic.Int64
	// transferUntil is until when (nanoseconds since base) a leadership
	// transfer this member's raft was asked for may still be in progress
	// (undelivered.go). transferMu orders setting it against forwarded
	// proposals stepped without waiting: those hold it for reading from
	// their check of transferUntil until raft has taken them.
	transferUntil atomic.Int64
	transferMu    sync.RWMutex

	appliedMu sync.Mutex
	appliedC  chan struct{} // closed and replaced after every apply batch
	leaderMu  sync.Mutex
	leaderC   chan struct{} // closed and replaced when the leader changes

	proposals proposals
	metrics   Metrics
	reads     reads

	fwdMu    sync.RWMutex
	forwards map[string]ForwardFunc

	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
}

// Open opens or creates the member's data directory and starts the node:
// raft, the apply loop, the read-confirmation loop and the transport. A new
// directory bootstraps with Config.InitialCluster.
func Open(c Config) (*Node, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if _, err := checkIdentity(cfg.DataDir, &raftstorev1.MemberIdentity{Name: cfg.Name, Id: cfg.ID, ClusterId: cfg.ClusterID}); err != nil {
		return nil, err
	}
	removeIncomingSnapshots(cfg.DataDir)

	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		mem:      raft.NewMemoryStorage(),
		sm:       cfg.StateMachine,
		trans:    cfg.Transport,
		base:     time.Now(),
		appliedC: make(chan struct{}),
		leaderC:  make(chan struct{}),
		stopc:    make(chan struct{}),
		done:     make(chan struct{}),
		forwards: map[string]ForwardFunc{},
	}
	n.forwards[forwardProposalsDropped] = n.handleProposalsDropped
	n.raftState.Store(raft.StateFollower)
	n.confirmed.Store(neverConfirmed)
	n.proposals.init(cfg.ID)
	n.reads.init()

	if n.logs, err = openLogStore(cfg.DataDir, n.log, cfg.TestSyncDelay); err != nil {
		return nil, err
	}
	snap, hs, ents, err := n.logs.load()
	if err != nil {
		n.logs.Close()
		return nil, err
	}
	fresh := snap == nil && hs == nil && len(ents) == 0

	statePath := filepath.Join(cfg.DataDir, "state.db")
	if !fresh {
		if _, err := os.Stat(statePath); err != nil {
			n.logs.Close()
			return nil, fmt.Errorf("data directory %s has a raft log but no state database (%v): it is incomplete; restore it or remove the member and re-add it", cfg.DataDir, err)
		}
	}
	if err := n.openState(statePath, ""); err != nil {
		n.logs.Close()
		return nil, err
	}
	if cfg.ForceNewCluster && !fresh {
		if snap, hs, ents, err = n.forceNewCluster(snap, hs, ents); err != nil {
			n.closeStores()
			return nil, err
		}
	}

	if snap != nil {
		if err := n.mem.ApplySnapshot(snap); err != nil {
			n.closeStores()
			return nil, fmt.Errorf("load snapshot metadata: %w", err)
		}
		n.snapshotIndex = snap.GetMetadata().GetIndex()
		if n.applied.Load() < n.snapshotIndex {
			n.closeStores()
			return nil, fmt.Errorf("state database is applied to %d, behind the raft snapshot at %d: the data directory is inconsistent", n.applied.Load(), n.snapshotIndex)
		}
	}
	if hs != nil {
		if err := n.mem.SetHardState(hs); err != nil {
			n.closeStores()
			return nil, fmt.Errorf("load hard state: %w", err)
		}
		// Status and metrics report these before the first Ready.
		n.term.Store(hs.GetTerm())
		n.commit.Store(hs.GetCommit())
	}
	if err := n.mem.Append(ents); err != nil {
		n.closeStores()
		return nil, fmt.Errorf("load raft entries: %w", err)
	}

	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   n.mem,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    raftLogger{n.log.With("component", "raft")},
	}

	if fresh && len(cfg.JoinMembers) > 0 {
		// Joining an existing cluster: start empty; the leader sends a
		// snapshot and the log.
		for _, m := range cfg.JoinMembers {
			if m.GetId() != cfg.ID {
				n.trans.AddPeer(m.GetId(), m.GetPeerAddress())
			}
		}
		n.log.Info("joining existing cluster", "members", len(cfg.JoinMembers))
		n.raft = raft.RestartNode(rc)
	} else if fresh {
		var peers []raft.Peer
		found := false
		for _, m := range cfg.InitialCluster {
			ctx, err := proto.Marshal(m)
			if err != nil {
				return nil, err
			}
			peers = append(peers, raft.Peer{ID: m.GetId(), Context: ctx})
			if m.GetId() == cfg.ID {
				found = true
			}
			if m.GetId() != cfg.ID {
				n.trans.AddPeer(m.GetId(), m.GetPeerAddress())
			}
		}
		if !found {
			n.trans.Stop()
			n.closeStores()
			return nil, fmt.Errorf("initial cluster does not include this member %q", cfg.Name)
		}
		n.log.Info("bootstrapping new member", "members", len(peers))
		n.raft = raft.StartNode(rc, peers)
	} else {
		members, err := n.members()
		if err != nil {
			n.trans.Stop()
			n.closeStores()
			return nil, err
		}
		for _, m := range members {
			if m.GetId() != cfg.ID {
				n.trans.AddPeer(m.GetId(), m.GetPeerAddress())
			}
		}
		n.log.Info("restarting member", "applied", n.applied.Load(), "snapshot", n.snapshotIndex, "entries", len(ents))
		n.raft = raft.RestartNode(rc)
	}

	// The transport starts only now: an incoming message is handed to raft,
	// which must exist.
	if err := n.trans.Start(n); err != nil {
		n.raft.Stop()
		n.trans.Stop()
		n.closeStores()
		return nil, fmt.Errorf("start transport: %w", err)
	}
	n.publishConfState()
	n.wg.Add(3)
	go n.run()
	go n.readLoop()
	go n.promoteLoop()
	return n, nil
}

// openState opens the state database at path and rebuilds the state
// machine's in-memory state from it. With installAs set (a snapshot being
// installed), the file is renamed to installAs and replaces the current
// database under stateMu, so readers see either database, never none.
func (n *Node) openState(path, installAs string) error {
	st, err := openStateDB(path)
	if err != nil {
		return err
	}
	err = st.db.Update(func(tx *bolt.Tx) error {
		if err := n.sm.Init(tx); err != nil {
			return fmt.Errorf("init state machine: %w", err)
		}
		return nil
	})
	if err == nil {
		err = st.db.View(func(tx *bolt.Tx) error {
			as, cs, err := readApplied(tx)
			if err != nil {
				return err
			}
			st.opened(as.GetIndex())
			n.applied.Store(as.GetIndex())
			n.appliedTerm.Store(as.GetTerm())
			n.confState = cs
			if err := n.sm.Restore(tx); err != nil {
				return fmt.Errorf("restore state machine: %w", err)
			}
			if c, ok := n.sm.(Committer); ok {
				c.Committed(as.GetIndex())
			}
			return nil
		})
	}
	if err != nil {
		st.Close()
		return fmt.Errorf("open state database %s: %w", path, err)
	}
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if installAs != "" {
		if n.state != nil {
			// Replaced by a newer snapshot: its open batch is superseded.
			if err := n.state.discard(); err != nil {
				st.Close()
				return fmt.Errorf("close replaced state database: %w", err)
			}
		}
		if err := os.Rename(path, installAs); err != nil {
			st.Close()
			return err
		}
		if err := durable.SyncDir(filepath.Dir(installAs)); err != nil {
			st.Close()
			return err
		}
		st.path = installAs
	}
	n.state = st
	return nil
}

// publishConfState makes the raft loop's configuration visible to readers.
func (n *Node) publishConfState() {
	n.confPub.Store(proto.Clone(n.confState).(*raftpb.ConfState))
}

func (n *Node) members() ([]*raftstorev1.Member, error) {
	var out []*raftstorev1.Member
	n.stateMu.RLock()
	defer n.stateMu.RUnlock()
	err := n.state.peek(func(tx *bolt.Tx) error {
		var err error
		out, err = readMembers(tx)
		return err
	})
	return out, err
}

// view runs fn in a read transaction on the current state database, after
// committing the open batch, so fn sees everything applied so far (a
// proposer reads its own write) and a revision that matches its data.
func (n *Node) view(fn func(tx *bolt.Tx) error) error {
	n.stateMu.RLock()
	defer n.stateMu.RUnlock()
	if _, err := n.state.commit(); err != nil {
		return err
	}
	return n.state.db.View(fn)
}

// Members returns the replicated membership.
func (n *Node) Members() ([]*raftstorev1.Member, error) { return n.members() }

func (n *Node) closeStores() {
	n.logs.Close()
	n.stateMu.Lock()
	if n.state != nil {
		n.state.Close()
	}
	n.stateMu.Unlock()
}

// run is the raft loop: tick, and handle each Ready in the order raft's
// contract requires.
func (n *Node) run() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	// Commits an idle batch; a busy one is committed after an apply.
	commits := time.NewTicker(n.cfg.BatchInterval)
	defer commits.Stop()
	isLeader := false
	var lastLeader uint64 // the last leader known, kept while none is
	for {
		select {
		case <-ticker.C:
			n.raft.Tick()
		case <-commits.C:
			if err := n.maybeCommitState(); err != nil {
				return
			}
		case rd := <-n.raft.Ready():
			if rd.SoftState != nil {
				isLeader = rd.RaftState == raft.StateLeader
				n.raftState.Store(rd.RaftState)
				if old := n.leader.Swap(rd.Lead); old != rd.Lead {
					n.logLeaderChange(rd, lastLeader)
					if rd.Lead != 0 {
						lastLeader = rd.Lead
					}
					n.notifyLeader()
				}
			}
			if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
				n.term.Store(rd.HardState.GetTerm())
				n.commit.Store(rd.HardState.GetCommit())
			}
			// A leader may send in parallel with its own write (raft thesis
			// 10.2.1); a follower must persist first.
			if isLeader {
				n.trans.Send(rd.Messages)
			}
			if err := n.persist(rd); err != nil {
				n.fail(err)
				return
			}
			if !isLeader {
				n.trans.Send(rd.Messages)
			}
			n.reads.deliver(rd.ReadStates)
			if err := n.apply(rd.CommittedEntries); err != nil {
				n.fail(err)
				return
			}
			if err := n.maybeCommitState(); err != nil {
				return
			}
			if err := n.maybeSnapshot(); err != nil {
				n.fail(err)
				return
			}
			n.raft.Advance()
		case <-n.stopc:
			return
		}
	}
}

// persist makes a Ready's snapshot, entries and hard state durable, then
// hands them to raft's in-memory storage.
func (n *Node) persist(rd raft.Ready) error {
	if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := n.logs.save(rd.HardState, rd.Entries); err != nil {
		return err
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		if err := n.mem.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("set hard state: %w", err)
		}
	}
	if err := n.mem.Append(rd.Entries); err != nil {
		return fmt.Errorf("append entries: %w", err)
	}
	return nil
}

// logLeaderChange writes the one log line of a leader change: when a new
// leader is known, not when the old one is lost (an election in progress
// would otherwise log twice; losing quorum shows in readiness and in raft's
// own warning). raft's own election chatter is at debug (logger.go).
func (n *Node) logLeaderChange(rd raft.Ready, previous uint64) {
	if rd.Lead == 0 {
		n.log.Debug("leader lost", "previous", fmt.Sprintf("%016x", previous))
		return
	}
	n.metrics.LeaderChanges.Add(1)
	term := n.term.Load()
	if rd.HardState != nil && rd.HardState.GetTerm() > term {
		term = rd.HardState.GetTerm()
	}
	n.log.Info("leader changed", "leader", fmt.Sprintf("%016x", rd.Lead), "previous", fmt.Sprintf("%016x", previous),
		"term", term, "self", rd.Lead == n.cfg.ID)
}

func (n *Node) notifyApplied() {
	n.appliedMu.Lock()
	close(n.appliedC)
	n.appliedC = make(chan struct{})
	n.appliedMu.Unlock()
}

func (n *Node) notifyLeader() {
	n.leaderMu.Lock()
	close(n.leaderC)
	n.leaderC = make(chan struct{})
	n.leaderMu.Unlock()
}

func (n *Node) leaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderC
}

// WaitApplied blocks until the node has applied index or ctx ends.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	for {
		n.appliedMu.Lock()
		ch := n.appliedC
		n.appliedMu.Unlock()
		if n.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.done:
			return n.stoppedErr()
		}
	}
}

// AppliedIndex is the index of the last entry applied to the state machine:
// the revision answers carry.
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// ID is this member's raft id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Name is this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// ClusterID is the raft group's id.
func (n *Node) ClusterID() uint64 { return n.cfg.ClusterID }

// Leader is the current leader's id, 0 when none is known.
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Status reports this member's view of itself.
func (n *Node) Status() *MemberStatus {
	st := n.raftState.Load().(raft.StateType)
	learner := false
	if n.raft != nil {
		s := n.raft.Status()
		_, learner = s.Config.Learners[n.cfg.ID]
	}
	var clock *raftstorev1.ClockStatus
	if n.cfg.ClockStatus != nil {
		clock = n.cfg.ClockStatus()
	}
	return &MemberStatus{
		Clock:         clock,
		Name:          n.cfg.Name,
		ID:            n.cfg.ID,
		PeerAddress:   n.cfg.PeerAddress,
		ClientAddress: n.cfg.ClientAddress,
		State:         stateName(st),
		Learner:       learner,
		Term:          n.term.Load(),
		AppliedIndex:  n.applied.Load(),
		CommitIndex:   n.commit.Load(),
		LeaderID:      n.leader.Load(),
		ServingReads:  n.BoundedReadCheck() == nil,
		Features:      n.cfg.Features,
	}
}

func stateName(s raft.StateType) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "State"))
}

// PeerStatus asks another member about itself over the peer transport.
func (n *Node) PeerStatus(ctx context.Context, id uint64) (*MemberStatus, error) {
	if id == n.cfg.ID {
		return n.Status(), nil
	}
	return n.trans.PeerStatus(ctx, id)
}

// Process implements Handler.
func (n *Node) Process(ctx context.Context, m *raftpb.Message) error {
	switch m.GetType() {
	case raftpb.MessageType_MsgProp:
		return n.stepProposal(ctx, m) // undelivered.go
	case raftpb.MessageType_MsgTransferLeader:
		n.noteTransfer() // before raft can start it
	}
	return n.raft.Step(ctx, m)
}

// ReportUnreachable implements Handler.
func (n *Node) ReportUnreachable(id uint64) { n.raft.ReportUnreachable(id) }

// ReportSnapshot implements Handler.
func (n *Node) ReportSnapshot(id uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
		n.metrics.SnapshotSendFailures.Add(1)
	}
	n.raft.ReportSnapshot(id, st)
}

// ErrTransferAbandoned: raft gave up a leadership transfer (the
// transferee did not catch up and campaign within an election timeout)
// and this member still leads.
var ErrTransferAbandoned = errors.New("raft abandoned the leadership transfer")

// TransferLeadership asks raft to hand leadership to transferee and waits
// until transferee leads, raft abandons the transfer (ErrTransferAbandoned:
// this member still leads, with no transfer in progress), or ctx ends.
func (n *Node) TransferLeadership(ctx context.Context, transferee uint64) error {
	n.noteTransfer()
	n.raft.TransferLeadership(ctx, n.leader.Load(), transferee)
	// raft has stepped the request when TransferLeadership returns; it
	// says nothing when it gives up, so its status is looked at every tick.
	tick := time.NewTicker(n.cfg.TickInterval)
	defer tick.Stop()
	for {
		ch := n.leaderChanged()
		if l := n.leader.Load(); l == transferee {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
			if st := n.raft.Status(); st.RaftState == raft.StateLeader && st.LeadTransferee == raft.None {
				return fmt.Errorf("transfer leadership to %016x: %w (it did not catch up within an election timeout); this member still leads", transferee, ErrTransferAbandoned)
			}
		case <-ctx.Done():
			return fmt.Errorf("transfer leadership to %016x: %w", transferee, ctx.Err())
		}
	}
}

// Done is closed when the node has stopped, by Stop or by a fatal error.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is the fatal error that stopped the node, nil after a clean Stop.
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

func (n *Node) stoppedErr() error {
	if err := n.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrStopped, err)
	}
	return ErrStopped
}

// fail records a fatal error and stops the node. A member that cannot
// persist or apply must stop rather than answer from a state that diverges.
func (n *Node) fail(err error) {
	n.errMu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.errMu.Unlock()
	n.log.Error("raft node stopping on fatal error", "err", err)
	go n.Stop()
}

// Stop stops the node and closes its databases. It is safe to call more
// than once.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.stopc)
		n.trans.Stop()
		n.raft.Stop()
		n.wg.Wait()
		n.proposals.failAll(n.stoppedErr())
		n.closeStores()
		close(n.done)
	})
}

// View runs fn in a read transaction of the state database with the index
// that transaction is applied to, so a multi-key read is consistent and
// carries its exact revision.
func (n *Node) View(fn func(tx *bolt.Tx, applied uint64) error) error {
	return n.view(func(tx *bolt.Tx) error {
		as, _, err := readApplied(tx)
		if err != nil {
			return err
		}
		return fn(tx, as.GetIndex())
	})
}

// HandleForwards registers fn for application messages of kind sent by
// other members with Forward. Register before traffic of that kind can
// arrive; an unregistered kind is answered with an error.
func (n *Node) HandleForwards(kind string, fn ForwardFunc) {
	n.fwdMu.Lock()
	n.forwards[kind] = fn
	n.fwdMu.Unlock()
}

// Forward sends an application message to member id over the peer
// transport and returns its handler's answer.
func (n *Node) Forward(ctx context.Context, id uint64, kind string, payload []byte) ([]byte, error) {
	return n.trans.Forward(ctx, id, kind, payload)
}

// HandleForward implements Handler.
func (n *Node) HandleForward(ctx context.Context, from uint64, kind string, payload []byte) ([]byte, error) {
	n.fwdMu.RLock()
	fn := n.forwards[kind]
	n.fwdMu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("no handler for forwarded %q messages", kind)
	}
	return fn(ctx, from, payload)
}

// UpdatePeerAddress points the transport at a member's new peer address
// (learned from gossip). Unknown ids are ignored.
func (n *Node) UpdatePeerAddress(id uint64, addr string) {
	if _, err := n.member(id); err != nil || addr == "" {
		return
	}
	n.trans.AddPeer(id, addr)
}
