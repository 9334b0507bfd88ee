// Package state is tokenstore's replicated application state. State
// implements raftstore.StateMachine for the raftstore.v1 Command entries and
// keeps an in-memory index of tokens so an authentication is a parse, a hash
// and a map lookup: no disk read, no lock held across the hash.
//
// Durable layout (state.db buckets owned here), version 1:
//
//	tokenstore/version -> uint32 big endian (FormatVersion)
//	tokens/<id>        -> raftstorev1.TokenRecord
//
// Apply is deterministic: times, ids, salts and hashes come in the command.
// Refusals (unknown id, duplicate id, change to a revoked token) are results
// handed to the proposer, identical on every member.
//
// Concurrency: Init, Apply and Restore run on the raft loop only.
// Authenticate, Lookup and the read helpers are safe from any goroutine.
package state
