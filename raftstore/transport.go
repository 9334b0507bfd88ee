package raftstore

import (
	"context"
	"io"

	"go.etcd.io/raft/v3/raftpb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Transport carries raft messages between members.
//
// Concurrency: Send is called only from the node's raft loop and must not
// block on the network: a transport queues per peer and drops when a queue is
// full (raft retransmits; a drop is reported through Handler.ReportUnreachable).
// AddPeer and RemovePeer are called from the apply loop. Start is called once
// before any other method; Stop once, last.
type Transport interface {
	Start(h Handler) error
	Send(msgs []*raftpb.Message)
	AddPeer(id uint64, addr string)
	RemovePeer(id uint64)
	// PeerStatus asks a peer about itself.
	PeerStatus(ctx context.Context, id uint64) (*MemberStatus, error)
	// Forward delivers an application message to peer id and returns its
	// answer (see Node.Forward).
	Forward(ctx context.Context, id uint64, kind string, payload []byte) ([]byte, error)
	Stop()
}

// Handler is what a Transport delivers to; *Node implements it. Every method
// is safe to call from any goroutine.
type Handler interface {
	// Process hands an incoming raft message to the node.
	Process(ctx context.Context, m *raftpb.Message) error
	// ReceiveSnapshot takes a MsgSnap with the state database that belongs to
	// it; it returns once the database is durable and the message stepped.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, db io.Reader, checksum func() []byte) error
	// OpenSnapshot prepares an outgoing MsgSnap: it returns the message with
	// its metadata rewritten to describe the database that the returned
	// stream yields. The caller must Close the stream.
	OpenSnapshot(m *raftpb.Message) (*SnapshotStream, error)
	// ReportUnreachable and ReportSnapshot feed delivery outcomes to raft.
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, ok bool)
	// ReportUndelivered hands back messages the transport dropped without
	// writing them to any connection (full queue, no stream, a send that
	// failed). A transport reports only messages it knows were not sent,
	// never one that may have been: a forwarded proposal reported here
	// reached no log and may be proposed again.
	ReportUndelivered(msgs []*raftpb.Message)
	// Status reports this member's view of itself.
	Status() *MemberStatus
	// HandleJoin adds a new member that asked to join (see Node.HandleJoin).
	HandleJoin(ctx context.Context, req *raftstorev1.JoinRequest) (*raftstorev1.JoinResponse, error)
	// HandleForward answers an application message from peer from.
	HandleForward(ctx context.Context, from uint64, kind string, payload []byte) ([]byte, error)
}

// ForwardFunc handles application messages of one kind sent with
// Node.Forward. It runs on a transport goroutine and must not block long.
type ForwardFunc func(ctx context.Context, from uint64, payload []byte) ([]byte, error)

// SnapshotStream is a consistent copy of the state database being sent to a
// peer, together with the MsgSnap that describes it.
type SnapshotStream struct {
	Message *raftpb.Message
	Size    int64
	io.ReadCloser
}

// MemberStatus is one member's view of itself.
type MemberStatus struct {
	Name          string
	ID            uint64
	PeerAddress   string
	ClientAddress string
	// State is "leader", "follower", "candidate" or "pre-candidate".
	State        string
	Learner      bool
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	LeaderID     uint64
	ServingReads bool
	// Clock is the member's clock report; nil when it sends none.
	Clock *raftstorev1.ClockStatus
	// Features are the optional replicated operations its binary applies
	// (Config.Features); none from an older binary.
	Features []string
}
