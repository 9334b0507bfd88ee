// Package clock gives a member its cluster time: its own wall clock
// corrected by its measured offset to the raft leader's clock, so that every
// member decides a time check (token expiry, JWT nbf/iat/exp) the same way
// even when one member's clock is minutes off (DESIGN.md, failure 3).
//
// How the offset is measured (NTP-style, over the peer transport): a
// follower reads its local clock (t0), asks the leader for the leader's
// clock (Answer), and reads its local clock again on the answer (t3). The
// leader's reading lies somewhere in [t0, t3]; assuming it lies in the
// middle, offset = leaderTime − (t0+t3)/2, with an error of at most half the
// round trip. Of the last Window samples (taken against the current
// leader), the one with the smallest round trip is used: a delayed answer
// (queueing, a busy leader) only widens the interval, and the tightest one
// is the most accurate. The leader's own offset is 0 by definition: cluster
// time is the leader's clock.
//
// What the member uses (Now):
//   - Source "cluster" (the default): local clock + the applied offset.
//   - Source "local": the local clock; the offset is still measured and
//     reported, never applied.
//   - Before the first measurement the offset is unknown and Now is the
//     local clock (Status says so). Afterwards the last good offset stays
//     applied while no leader is known or the leader cannot be asked.
//   - An offset larger than MaxCorrection is not applied: such a gap is a
//     broken clock (or a broken leader clock) for an operator to fix, not
//     something to follow silently. The previously applied offset (if any)
//     stays, Refused is set (an alarm metric) and an error is logged.
//
// Concurrency: Now, Offset and Status are safe to call from any goroutine
// and do not block (Now is two atomic loads on top of the local clock; it
// is on every authentication). Run is called once, measures until its
// context ends, and returns then. Answer is safe to call concurrently.
package clock
