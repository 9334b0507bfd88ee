package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Source says which time a member decides with.
type Source string

const (
	// SourceCluster is the local clock corrected by the offset to the
	// leader: every member decides as the leader's clock would.
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
)

// Config configures a Clock.
type Config struct {
	Source Source
	// Local is the member's own wall clock; nil means time.Now. It should
	// keep time.Now's monotonic reading (add to it rather than build a new
	// time), so round trips are measured on the monotonic clock.
	Local func() time.Time
	// MaxCorrection is the largest offset applied; a larger one is refused
	// (see the package doc). Must be positive.
	MaxCorrection time.Duration
	// WarnThreshold: an offset larger than this is logged as a warning
	// (once per crossing). 0 disables the warning.
	WarnThreshold time.Duration
	// Interval between measurements (DefaultInterval when 0); until the
	// first succeeds, a quarter of it.
	Interval time.Duration
	// Window is how many recent samples the estimate picks from
	// (DefaultWindow when 0).
	Window int
	// Self is this member's raft id; Leader returns the leader's, 0 when
	// none is known. Called from Run and Answer.
	Self   uint64
	Leader func() uint64
	// Exchange sends a question (made by the clock) to member leader and
	// returns that member's Answer. Called from Run only.
	Exchange func(ctx context.Context, leader uint64, question []byte) ([]byte, error)
	Logger   *slog.Logger
}

// Status is what a member reports about its clock.
type Status struct {
	Source Source
	// Measured is false until the first offset is known; Offset and RTT
	// are 0 then.
	Measured bool
	// Offset is the latest estimate of leader clock − local clock; 0 on
	// the leader. RTT is the round trip of the sample it came from.
	Offset time.Duration
	RTT    time.Duration
	// Leader is the member the offset was measured against.
	Leader uint64
	// Correction is what Now adds to the local clock: the offset last
	// applied (0 with SourceLocal, before any measurement, or while every
	// measurement so far was refused).
	Correction time.Duration
	// Applied is true when Correction is the current Offset.
	Applied bool
	// Refused is true while the current Offset exceeds MaxCorrection and
	// so is not applied (with SourceCluster): an alarm.
	Refused bool
}

// Clock is a member's time. See the package doc for what Now returns and
// which methods may be called concurrently.
type Clock struct {
	cfg   Config
	local func() time.Time
	log   *slog.Logger

	// correction is the applied offset in nanoseconds, read by Now.
	correction atomic.Int64

	mu     sync.Mutex
	status Status
	warned bool // the warning for the current crossing was logged

	est *Estimator // Run's only
}

// New checks cfg and returns a clock that reads the local clock until Run
// has measured an offset.
func New(cfg Config) (*Clock, error) {
	if _, err := ParseSource(string(cfg.Source)); err != nil {
		return nil, err
	}
	if cfg.MaxCorrection <= 0 {
		return nil, errors.New("clock: the largest correction must be positive")
	}
	if cfg.WarnThreshold < 0 {
		return nil, errors.New("clock: the warning threshold must not be negative")
	}
	if cfg.Leader == nil || cfg.Exchange == nil {
		return nil, errors.New("clock: Leader and Exchange are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	c := &Clock{cfg: cfg, local: cfg.Local, log: cfg.Logger, est: NewEstimator(cfg.Window)}
	if c.local == nil {
		c.local = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.status.Source = cfg.Source
	return c, nil
}

// Now is the time this member decides with: the local clock plus the
// applied correction.
func (c *Clock) Now() time.Time {
	return c.local().Add(time.Duration(c.correction.Load()))
}

// Local is the member's own clock, uncorrected.
func (c *Clock) Local() time.Time { return c.local() }

// Offset is the latest measured offset to the leader (leader − local) and
// whether one has been measured.
func (c *Clock) Offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status.Offset, c.status.Measured
}

// Status reports the clock's state.
func (c *Clock) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Run measures the offset to the leader every Interval until ctx ends.
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
		if _, ok := c.Offset(); !ok {
			next /= 4
		}
		t.Reset(next)
	}
}

// measure takes one sample against the current leader and applies the
// new estimate. Without a leader, or when the leader does not answer, the
// last estimate stays.
func (c *Clock) measure(ctx context.Context) {
	leader := c.cfg.Leader()
	switch {
	case leader == 0:
		return
	case leader == c.cfg.Self:
		c.est.Reset()
		c.update(leader, 0, 0)
		return
	}
	if c.Status().Leader != leader {
		c.est.Reset()
	}
	qctx, cancel := context.WithTimeout(ctx, c.cfg.Interval)
	defer cancel()
	t0 := c.local()
	q, err := proto.Marshal(timestamppb.New(t0))
	if err != nil {
		c.log.Error("encode clock question", "err", err)
		return
	}
	a, err := c.cfg.Exchange(qctx, leader, q)
	t3 := c.local()
	if err != nil {
		c.log.Debug("could not ask the leader for its clock", "leader", fmt.Sprintf("%016x", leader), "err", err)
		return
	}
	lt, err := decodeTime(a)
	if err != nil {
		c.log.Warn("leader's clock answer unreadable", "leader", fmt.Sprintf("%016x", leader), "err", err)
		return
	}
	if !c.est.Add(Sample{Sent: t0, Received: t3, Leader: lt}) {
		return
	}
	off, rtt, _ := c.est.Estimate()
	c.update(leader, off, rtt)
}

// update records an estimate and applies it unless it must be refused,
// logging each crossing of the warning threshold and of the bound once.
func (c *Clock) update(leader uint64, off, rtt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.status
	first := !st.Measured
	st.Measured, st.Offset, st.RTT, st.Leader = true, off, rtt, leader
	refuse := st.Source == SourceCluster && abs(off) > c.cfg.MaxCorrection
	switch {
	case refuse && !st.Refused:
		c.log.Error("clock offset to the leader is larger than --max-clock-correction: NOT correcting; fix this member's or the leader's clock (NTP)",
			"offset", off.String(), "max_clock_correction", c.cfg.MaxCorrection.String(), "still_applied", st.Correction.String(),
			"leader", fmt.Sprintf("%016x", leader))
	case !refuse && st.Refused:
		c.log.Info("clock offset to the leader is within --max-clock-correction again; correcting", "offset", off.String())
	}
	st.Refused = refuse
	if st.Source == SourceCluster && !refuse {
		st.Correction = off
		c.correction.Store(int64(off))
	}
	st.Applied = st.Source == SourceCluster && !refuse
	over := c.cfg.WarnThreshold > 0 && abs(off) > c.cfg.WarnThreshold
	switch {
	case over && !c.warned:
		c.log.Warn("clock offset to the leader is large: time checks with a smaller leeway than this differ between members unless corrected",
			"offset", off.String(), "rtt", rtt.String(), "warn_threshold", c.cfg.WarnThreshold.String(),
			"time_source", string(st.Source), "applied", st.Applied)
	case !over && c.warned:
		c.log.Info("clock offset to the leader is small again", "offset", off.String())
	case first:
		c.log.Info("clock offset to the leader measured", "offset", off.String(), "rtt", rtt.String(),
			"time_source", string(st.Source), "applied", st.Applied)
	}
	c.warned = over
}

// Answer is the leader's side of a measurement: it answers a question
// with this member's clock. A member that is not the leader refuses, so a
// follower never measures against a stale leader.
func (c *Clock) Answer(question []byte) ([]byte, error) {
	if _, err := decodeTime(question); err != nil {
		return nil, fmt.Errorf("clock question: %w", err)
	}
	if l := c.cfg.Leader(); l != c.cfg.Self {
		return nil, fmt.Errorf("clock question: this member is not the leader (leader %016x)", l)
	}
	// Now, not the local clock: right after an election the new leader may
	// still apply its old correction for up to an interval, and followers
	// should follow the time it actually decides with.
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
