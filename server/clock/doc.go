// Package clock gives a member its cluster time: its own wall clock
// corrected toward the median of the voters' clocks, so that every member
// decides a time check (token expiry, JWT nbf/iat/exp) the same way, and
// the right way, even when one member's clock is minutes off (DESIGN.md,
// failure 3), whichever member leads.
//
// # Measuring
//
// Every Interval a member asks every other voter for its local clock
// (NTP-style, over the peer transport): it reads its own clock (t0),
// sends the question, reads its clock again on the answer (t3). The
// peer's reading lies somewhere in [t0, t3]; assuming the middle,
// offset = peer − (t0+t3)/2, exact to within half the round trip. Of the
// last Window samples of each peer, the one with the smallest round trip
// is used (Estimator): a delayed answer only widens the interval.
//
// Peers answer with their own, uncorrected clock (Answer), never with
// their cluster time: otherwise a skewed member's correction would feed
// back into the others' estimates.
//
// # Cluster time
//
// The target correction is the median of {0 for this member's own clock
// when it is a voter} ∪ {its offset to every other voter with an estimate
// no older than MaxSampleAge}; with an even count, the mean of the middle
// two. A median of n clocks cannot be moved by fewer than n/2 of them: with
// three voters one skewed clock, with five two, cannot move any member's
// time, leader or not. A learner takes the median of the voters' clocks
// only. A voter that stops answering keeps its last estimate for
// MaxSampleAge (clocks drift by milliseconds an hour; a member that is
// down still votes with the clock it had), so a three-member cluster with
// one member down still outvotes a skewed third. With no peer estimate at
// all, a member uses its own clock (Status.Clocks is 1).
//
// # Applying it
//
// Now is the local clock plus the applied correction. Until the member is
// synchronised (it has an estimate of every voter's clock, or SyncGrace
// has passed since Run began with at least one peer measured), the
// correction is set to the target at once, in either direction: a member
// that has just started must not spend minutes converging. It starts at
// the cluster time the synchronised peers decide with at that moment
// (their answers carry their correction), so that while they are still
// slewing toward a lower target, it slews with them rather than ahead. Afterwards,
// cluster time never runs backwards: a higher target is stepped to (a jump
// forward), a lower one is slewed to at SlewRate (cluster time runs at
// 1 − SlewRate of real time until it meets the target).
//
// A target larger than MaxCorrection is not applied: such a gap is a
// broken clock for an operator to fix, not something to follow silently.
// The applied correction stays, Refused is set (an alarm metric) and an
// error is logged. A target farther than OutlierThreshold from 0 makes
// this member an Outlier: its own clock is off the cluster's, which it
// corrects for, but its host needs its clock fixed (a warning is logged).
//
// With Source "local" the target is measured and reported, never applied.
//
// # Rolling upgrades
//
// Members of the release before this one took the leader's clock as
// cluster time and asked only the leader. While the leader runs that
// release (it answers only its old question, see Config.Exchange), a
// member of this release takes the leader's clock too (Status.OlderLeader),
// so every member decides alike during the upgrade; once the leader runs
// this release, the median applies, and the older followers, which ask
// only the leader, follow its cluster time (AnswerClusterTime).
//
// # Concurrency
//
// Ready reports an error until one round has asked every voter: a member
// should not serve before (a restarted member would decide its first
// requests with its own clock).
//
// Now, Local, Status, Ready and Answer are safe to call from any goroutine and do
// not block; Now is one atomic load on top of the local clock (it is on
// every authentication). Run is called once, measures until its context
// ends and returns after every question it sent has returned.
package clock
