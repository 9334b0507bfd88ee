// Package transport is the gRPC peer transport of a raftstore.Node.
//
// Each peer gets one long-lived client stream that carries raft messages in
// order, fed from a bounded queue. Send never blocks the raft loop: when a
// peer's queue is full or its stream is broken, messages are dropped and the
// peer reported unreachable; raft retransmits what matters. Snapshots
// (MsgSnap) go on their own stream together with the state database, so a
// large transfer never delays heartbeats.
//
// Every request carries the sender's cluster id; a member refuses requests
// from another cluster with FailedPrecondition, and the sender logs why.
package transport
