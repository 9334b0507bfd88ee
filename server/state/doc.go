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
// Packages rbac and oidc own their buckets (RBAC objects; OIDC issuers and
// their replicated key sets) and document their layouts; State routes their
// commands to them and publishes them in Committed with the tokens.
//
// Apply is deterministic: times, ids, salts and hashes come in the command.
// Refusals (unknown id, duplicate id, change to a revoked token) are results
// handed to the proposer, identical on every member.
//
// Imported tokens (ImportTokens) keep the hash they were made with (a
// Rancher hash, server/rancher). Apply does not check that it parses: a
// binary that knows fewer formats must apply the same entries as one that
// knows more; a hash this binary cannot read never authenticates. Records
// that use what older binaries do not enforce (imported hashes, audiences)
// only travel in ImportTokens, which such binaries refuse to apply (they
// stop) rather than store without enforcing.
//
// A slow imported hash (scrypt) is verified at most once per member and
// secret: the digest of the last secret that verified is kept with the
// hash, and at most GOMAXPROCS slow verifications run at once; past that,
// Check answers Busy instead of queueing.
//
// Authentication answers depend only on the token, the requested
// audiences, the applied state and the time (expiry), so members at the
// same revision give the same answer.
//
// Concurrency: Init, Apply and Restore run on the raft loop only.
// Authenticate, Check and the read helpers are safe from any goroutine.
package state
