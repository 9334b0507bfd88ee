// Package server runs one tokenstore member: the raftstore node with the
// replicated application state, the gRPC client API (tokenstore.v1, health,
// reflection) and the HTTP endpoints (/healthz, /livez, /readyz, /metrics).
//
// Reads are gated by the member's read consistency: bounded answers come
// from local state only while the node has confirmed, within
// --max-staleness, that it is caught up with the leader; otherwise the
// member fails closed with UNAVAILABLE and reports not ready. Writes are
// proposed through raft from any member and answered once applied locally.
// Every answer carries the revision (applied raft index) and member name.
package server
