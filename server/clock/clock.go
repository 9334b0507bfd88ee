package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Source says which time a member decides with.
type Source string

const (
	// SourceCluster is the local clock corrected toward the median of the
	// voters' clocks.
	SourceCluster Source = "cluster"
	// SourceLocal is the member's own clock, uncorrected.
	SourceLocal Source = "local"
)

// ParseSource reads a --time-source value.
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case SourceCluster, SourceLocal:
		return Source(s), nil
	}
	return "", fmt.Errorf("time source %q: want cluster or local", s)
}

// Defaults of Config.
const (
	DefaultInterval = time.Second
	DefaultWindow   = 8
	// DefaultMaxSampleAge is how long a voter that stopped answering keeps
	// its last estimate in the median. Quartz clocks drift apart by well
	// under a second in that time; a clock stepped meanwhile is measured
	// again as soon as its member answers.
	DefaultMaxSampleAge = 15 * time.Minute
	// DefaultSyncGrace is how long a member that has not yet measured
	// every voter waits for the rest before slewing instead of stepping:
	// members of a cluster started together come up within seconds.
	DefaultSyncGrace = 10 * time.Second
	// DefaultSlewRate: while slewing down, cluster time runs at half speed.
	DefaultSlewRate = 0.5
)

// Config configures a Clock.
type Config struct {
	Source Source
	// Local is the member's own wall clock; nil means time.Now. It should
	// keep time.Now's monotonic reading (add to it rather than build a new
	// time), so round trips, ages and slews are measured on the monotonic
	// clock.
	Local func() time.Time
	// MaxCorrection is the largest correction applied; a larger target is
	// refused (see the package doc). Must be positive.
	MaxCorrection time.Duration
	// OutlierThreshold: a target farther than this from 0 makes this
	// member an outlier (Status.Outlier, a warning once per crossing).
	// 0 disables it.
	OutlierThreshold time.Duration
	// Interval between rounds of measurement (DefaultInterval when 0);
	// until the member is synchronised, a quarter of it.
	Interval time.Duration
	// Window is how many recent samples of each peer the estimate picks
	// from (DefaultWindow when 0).
	Window int
	// MaxSampleAge, SyncGrace and SlewRate: see their defaults, used when
	// 0. SlewRate must be in (0, 1].
	MaxSampleAge time.Duration
	SyncGrace    time.Duration
	SlewRate     float64
	// Self is this member's raft id; Voters returns the current voters'
	// ids (Self among them unless this member is a learner). Called from
	// Run only.
	Self   uint64
	Voters func() []uint64
	// Exchange sends a question (made by the clock) to member peer and
	// returns that member's Answer. leader is true when the answer came
	// instead from a leader of the release that followed the leader's
	// clock (AnswerClusterTime's counterpart there, which is its own clock):
	// while one leads, this member follows it too (see the package doc).
	// Called from Run only, concurrently for different peers.
	Exchange func(ctx context.Context, peer uint64, question []byte) (answer []byte, leader bool, err error)
	Logger   *slog.Logger
}

// PeerClock is what a member knows of another voter's clock.
type PeerClock struct {
	ID uint64
	// Offset is the peer's clock minus this member's, from the sample
	// with the smallest round trip (RTT) of the recent ones.
	Offset, RTT time.Duration
	// Age is how long ago the latest sample was taken.
	Age time.Duration
	// Counted is false once Age exceeds MaxSampleAge: the estimate is no
	// longer part of the median.
	Counted bool
}

// Status is what a member reports about its clock.
type Status struct {
	Source Source
	// Measured is false until some peer's clock is known: Offset is 0 and
	// Now is the local clock then.
	Measured bool
	// Synced: the member has measured every voter, or SyncGrace passed
	// since Run began with some peer measured. Until then the correction
	// steps in either direction.
	Synced bool
	// Offset is cluster time minus this member's clock: the median of the
	// Clocks counted clocks (the target correction).
	Offset time.Duration
	// RTT is the largest round trip of the samples counted: the median is
	// exact to within half of it.
	RTT time.Duration
	// Clocks is how many clocks the median is taken of (1: this member's
	// own only); Voters how many voters there are.
	Clocks, Voters int
	// Correction is what Now adds to the local clock at the time of the
	// call: Offset once reached, a value on the way to it while slewing,
	// the last applied one while Refused, 0 with SourceLocal.
	Correction time.Duration
	// Applied is true when the correction follows Offset (cluster
	// source, not refused).
	Applied bool
	// Refused is true while Offset exceeds MaxCorrection and so is not
	// applied (with SourceCluster): an alarm.
	Refused bool
	// Outlier is true while Offset is beyond OutlierThreshold: this
	// member's own clock is off the cluster's.
	Outlier bool
	// OlderLeader is true while the leader runs the release that followed
	// the leader's clock: Offset is then the offset to the leader's clock,
	// as on the older members, so that all decide alike during a rolling
	// upgrade.
	OlderLeader bool
	// Peers are the other voters' clocks, by id.
	Peers []PeerClock
}

// Clock is a member's time. See the package doc for what Now returns and
// which methods may be called concurrently.
type Clock struct {
	cfg   Config
	local func() time.Time
	log   *slog.Logger

	// applied is the correction Now adds, as a function of the local clock.
	applied atomic.Pointer[slew]
	// asked is set once a round has asked every voter (Ready).
	asked atomic.Bool

	mu     sync.Mutex
	status Status // Correction is filled in by Status
	peers  map[uint64]*peer

	started time.Time // when New made it: SyncGrace counts from here
}

// peer is one other voter's clock estimate.
type peer struct {
	est  *Estimator
	last time.Time // local clock at the latest sample
	// older: the latest answer came from a leader of the older release.
	older bool
}

// New checks cfg and returns a clock that reads the local clock until Run
// has measured another member's.
func New(cfg Config) (*Clock, error) {
	if _, err := ParseSource(string(cfg.Source)); err != nil {
		return nil, err
	}
	if cfg.MaxCorrection <= 0 {
		return nil, errors.New("clock: the largest correction must be positive")
	}
	if cfg.OutlierThreshold < 0 {
		return nil, errors.New("clock: the outlier threshold must not be negative")
	}
	if cfg.SlewRate < 0 || cfg.SlewRate > 1 {
		return nil, fmt.Errorf("clock: slew rate %v: want (0, 1]", cfg.SlewRate)
	}
	if cfg.Voters == nil || cfg.Exchange == nil {
		return nil, errors.New("clock: Voters and Exchange are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxSampleAge <= 0 {
		cfg.MaxSampleAge = DefaultMaxSampleAge
	}
	if cfg.SyncGrace <= 0 {
		cfg.SyncGrace = DefaultSyncGrace
	}
	if cfg.SlewRate == 0 {
		cfg.SlewRate = DefaultSlewRate
	}
	c := &Clock{cfg: cfg, local: cfg.Local, log: cfg.Logger, peers: map[uint64]*peer{}}
	if c.local == nil {
		c.local = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.status.Source = cfg.Source
	c.status.Clocks = 1
	c.started = c.local()
	c.applied.Store(&slew{at: c.started, rate: cfg.SlewRate})
	return c, nil
}

// Now is the time this member decides with: the local clock plus the
// applied correction.
func (c *Clock) Now() time.Time {
	t := c.local()
	return t.Add(c.applied.Load().correction(t))
}

// Local is the member's own clock, uncorrected.
func (c *Clock) Local() time.Time { return c.local() }

// Status reports the clock's state.
func (c *Clock) Status() Status {
	c.mu.Lock()
	st := c.status
	st.Peers = slices.Clone(st.Peers)
	c.mu.Unlock()
	st.Correction = c.applied.Load().correction(c.local())
	return st
}

// Run measures every other voter's clock every Interval until ctx ends.
func (c *Clock) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.measure(ctx)
		next := c.cfg.Interval
		if !c.Status().Synced {
			next /= 4
		}
		t.Reset(next)
	}
}

// answer is one peer's sample in a round.
type answer struct {
	id     uint64
	s      Sample
	leader bool // from an older release's leader
}

// measure takes one sample of every other voter's clock, at the same
// time, and applies the new median.
func (c *Clock) measure(ctx context.Context) {
	voters := c.cfg.Voters()
	var wg sync.WaitGroup
	got := make(chan answer, len(voters))
	for _, id := range voters {
		if id == c.cfg.Self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, leader, ok := c.ask(ctx, id); ok {
				got <- answer{id, s, leader}
			}
		}()
	}
	wg.Wait()
	close(got)

	c.mu.Lock()
	defer c.mu.Unlock()
	var olderLeader uint64
	for s := range got {
		if s.leader {
			olderLeader = s.id
		}
		p := c.peers[s.id]
		if p == nil {
			p = &peer{est: NewEstimator(c.cfg.Window)}
			c.peers[s.id] = p
		}
		if p.est.Add(s.s) {
			p.last, p.older = s.s.Received, s.leader
		}
	}
	for id := range c.peers {
		if !slices.Contains(voters, id) {
			delete(c.peers, id) // removed from the cluster
		}
	}
	c.update(voters, olderLeader)
	if len(voters) > 0 {
		c.asked.Store(true)
	}
}

// clusterNow is the median of the corrections that would put this
// member's clock on each synchronised peer's cluster time as it answered
// (its offset plus its correction then), or the target when no peer is
// synchronised. c.mu is held.
func (c *Clock) clusterNow(voters []uint64) time.Duration {
	var at []time.Duration
	for _, id := range voters {
		p := c.peers[id]
		if id == c.cfg.Self || p == nil {
			continue
		}
		off, _, ok := p.est.Estimate()
		latest, _ := p.est.Latest()
		if ok && latest.PeerSynced {
			at = append(at, off+latest.PeerCorrection)
		}
	}
	if len(at) == 0 {
		return c.status.Offset
	}
	return median(at)
}

// onlyOlder is the peer to keep following when every counted peer's
// latest answer came from an older release's leader (the most recent of
// them), 0 otherwise. A member of this release that takes over leadership
// from such a leader cannot measure the older followers (they answer only
// a leader's question), and the median of its own clock and the old
// leader's would move cluster time halfway toward whichever is wrong: it
// keeps the old leader's clock until members of this release answer.
// c.mu is held.
func (c *Clock) onlyOlder(voters []uint64, now time.Time) uint64 {
	var id uint64
	var last time.Time
	for _, v := range voters {
		p := c.peers[v]
		if v == c.cfg.Self || p == nil || now.Sub(p.last) > c.cfg.MaxSampleAge {
			continue
		}
		if !p.older {
			return 0
		}
		if p.last.After(last) {
			id, last = v, p.last
		}
	}
	return id
}

// Ready says whether the member's time is fit to decide with: once one
// round has asked every voter for its clock (with the voters known),
// whatever was reachable is in the estimate. Until then a member that just started would decide with
// its own clock, minutes off if its host's is; readiness waits for this,
// which takes one exchange with each reachable peer.
func (c *Clock) Ready() error {
	if !c.asked.Load() {
		return errors.New("clock: the other voters have not been asked for their clocks yet")
	}
	return nil
}

// ask takes one sample of peer's clock.
func (c *Clock) ask(ctx context.Context, id uint64) (_ Sample, leader, ok bool) {
	qctx, cancel := context.WithTimeout(ctx, c.cfg.Interval)
	defer cancel()
	t0 := c.local()
	q, err := proto.Marshal(timestamppb.New(t0))
	if err != nil {
		c.log.Error("encode clock question", "err", err)
		return Sample{}, false, false
	}
	a, leader, err := c.cfg.Exchange(qctx, id, q)
	t3 := c.local()
	if err != nil {
		c.log.Debug("could not ask a member for its clock", "member", fmt.Sprintf("%016x", id), "err", err)
		return Sample{}, false, false
	}
	smp := Sample{Sent: t0, Received: t3}
	if leader {
		smp.Peer, err = decodeTime(a)
	} else {
		smp.Peer, smp.PeerCorrection, smp.PeerSynced, err = decodeAnswer(a)
	}
	if err != nil {
		c.log.Warn("member's clock answer unreadable", "member", fmt.Sprintf("%016x", id), "err", err)
		return Sample{}, false, false
	}
	return smp, leader, true
}

// update computes the median from the peers' estimates (or, while
// olderLeader is not 0, takes that leader's) and applies it. c.mu is held.
func (c *Clock) update(voters []uint64, olderLeader uint64) {
	now := c.local()
	st := &c.status
	offsets := make([]time.Duration, 0, len(voters))
	if slices.Contains(voters, c.cfg.Self) {
		offsets = append(offsets, 0)
	}
	st.Peers = st.Peers[:0]
	st.RTT = 0
	measured := 0
	for _, id := range voters {
		p := c.peers[id]
		if id == c.cfg.Self || p == nil {
			continue
		}
		off, rtt, ok := p.est.Estimate()
		if !ok {
			continue
		}
		age := now.Sub(p.last)
		counted := age <= c.cfg.MaxSampleAge
		st.Peers = append(st.Peers, PeerClock{ID: id, Offset: off, RTT: rtt, Age: age, Counted: counted})
		if counted {
			offsets = append(offsets, off)
			st.RTT = max(st.RTT, rtt)
			measured++
		}
	}
	wasMeasured, wasSynced, wasClocks := st.Measured, st.Synced, st.Clocks
	st.Voters, st.Clocks = len(voters), max(len(offsets), 1)
	st.Measured = measured > 0
	// With no voters known yet (membership not loaded), nothing is
	// measured and nothing may be concluded.
	every := len(voters) > 0 && measured == len(voters)-boolInt(slices.Contains(voters, c.cfg.Self))
	st.Synced = st.Synced || every || (st.Measured && now.Sub(c.started) >= c.cfg.SyncGrace)
	target := median(offsets)
	if olderLeader == 0 {
		olderLeader = c.onlyOlder(voters, now)
	}
	wasOlder := st.OlderLeader
	st.OlderLeader = false
	if p := c.peers[olderLeader]; p != nil {
		if off, rtt, ok := p.est.Estimate(); ok {
			target, st.RTT, st.OlderLeader = off, rtt, true
		}
	}
	if st.OlderLeader != wasOlder {
		c.log.Info("cluster time follows the leader's clock while the leader runs an older release", "following_leader", st.OlderLeader,
			"leader", fmt.Sprintf("%016x", olderLeader))
	}
	st.Offset = target

	refuse := st.Source == SourceCluster && abs(target) > c.cfg.MaxCorrection
	switch {
	case refuse && !st.Refused:
		c.log.Error("cluster time is further from this member's clock than --max-clock-correction: NOT correcting; fix the clock of this member (or of the members it disagrees with) (NTP)",
			"offset", target.String(), "clocks", st.Clocks, "max_clock_correction", c.cfg.MaxCorrection.String(),
			"still_applied", c.applied.Load().correction(now).String())
	case !refuse && st.Refused:
		c.log.Info("cluster time is within --max-clock-correction of this member's clock again; correcting", "offset", target.String())
	}
	st.Refused = refuse
	st.Applied = st.Source == SourceCluster && !refuse
	if st.Applied {
		if wasSynced {
			c.applied.Store(c.applied.Load().toward(now, target, false))
		} else {
			// Until synchronised (and in the round that makes it so),
			// start where the synchronised members are now and go to the
			// target as they do: they may still be slewing toward it.
			start := c.clusterNow(voters)
			c.applied.Store((&slew{base: start, target: start, at: now, rate: c.cfg.SlewRate}).toward(now, target, false))
		}
	}

	outlier := c.cfg.OutlierThreshold > 0 && abs(target) > c.cfg.OutlierThreshold
	switch {
	case outlier && !st.Outlier:
		c.log.Warn("this member's clock is off the cluster time (the median of the voters' clocks): its decisions are corrected, but fix its clock (NTP)",
			"offset", target.String(), "clocks", st.Clocks, "voters", st.Voters, "outlier_threshold", c.cfg.OutlierThreshold.String(),
			"time_source", string(st.Source), "applied", st.Applied)
	case !outlier && st.Outlier:
		c.log.Info("this member's clock is close to the cluster time again", "offset", target.String())
	}
	st.Outlier = outlier
	switch {
	case st.Measured && !wasMeasured:
		c.log.Info("cluster time measured", "offset", target.String(), "rtt", st.RTT.String(),
			"clocks", st.Clocks, "voters", st.Voters, "time_source", string(st.Source), "applied", st.Applied)
	case !st.Measured && wasMeasured:
		c.log.Warn("no other member's clock is known any more: this member decides with its own clock", "voters", st.Voters)
	case st.Synced && !wasSynced:
		c.log.Info("cluster time synchronised: from now on it never runs backwards", "offset", target.String(), "clocks", st.Clocks, "voters", st.Voters)
	case st.Clocks != wasClocks && wasMeasured:
		c.log.Info("cluster time is now the median of a different number of clocks", "clocks", st.Clocks, "was", wasClocks, "voters", st.Voters, "offset", target.String())
	}
}

// Answer is a peer's side of a measurement: it answers a question with
// this member's own clock, uncorrected (see the package doc for why), and
// the correction it applies to it now.
func (c *Clock) Answer(question []byte) ([]byte, error) {
	if _, err := decodeTime(question); err != nil {
		return nil, fmt.Errorf("clock question: %w", err)
	}
	c.mu.Lock()
	synced := c.status.Synced
	c.mu.Unlock()
	t := c.local()
	return proto.Marshal(&raftstorev1.ClockAnswer{
		Local: timestamppb.New(t), Correction: durationpb.New(c.applied.Load().correction(t)), Synced: synced,
	})
}

func decodeAnswer(b []byte) (local time.Time, correction time.Duration, synced bool, err error) {
	a := &raftstorev1.ClockAnswer{}
	if err := proto.Unmarshal(b, a); err != nil {
		return time.Time{}, 0, false, err
	}
	if err := a.GetLocal().CheckValid(); err != nil {
		return time.Time{}, 0, false, err
	}
	if err := a.GetCorrection().CheckValid(); a.GetCorrection() != nil && err != nil {
		return time.Time{}, 0, false, err
	}
	return a.GetLocal().AsTime(), a.GetCorrection().AsDuration(), a.GetSynced(), nil
}

// AnswerClusterTime answers a question with this member's cluster time:
// what members of the release that followed the leader's clock ask the
// leader, so that they follow the majority through a leader of this
// release. The caller answers it only while this member leads.
func (c *Clock) AnswerClusterTime(question []byte) ([]byte, error) {
	if _, err := decodeTime(question); err != nil {
		return nil, fmt.Errorf("clock question: %w", err)
	}
	return proto.Marshal(timestamppb.New(c.Now()))
}

func decodeTime(b []byte) (time.Time, error) {
	ts := &timestamppb.Timestamp{}
	if err := proto.Unmarshal(b, ts); err != nil {
		return time.Time{}, err
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, err
	}
	return ts.AsTime(), nil
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
