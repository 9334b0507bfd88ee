package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/clock"
)

// Cluster time: every time check on a member (token expiry on every
// authentication path, and the times it stamps into proposals: created,
// expiry from a TTL, revoked, imported, lastUsedAt) reads s.clock.Now(),
// the member's clock corrected by its offset to the leader (server/clock).
// Raft ticks, timeouts and elapsed-time bookkeeping (autopilot's "dead
// for", request deadlines) stay on the monotonic clock: they measure
// durations on this member, and a correction applied in between would
// distort them.

// DefaultMaxClockCorrection is the default --max-clock-correction. A clock
// a few minutes off (a VM resumed after a pause, NTP not running) is what
// the correction is for; an offset of more than 10 minutes is a broken
// clock or time zone setup on this member or the leader, and following it
// silently would hide that, so it is refused and alarmed instead.
const DefaultMaxClockCorrection = 10 * time.Minute

// clockWarnThreshold is the offset past which a warning is logged: half
// the JWT leeway (--jwt-leeway), so a skew is reported well before it
// could matter to a JWT decision made with the local clock; 30 s when
// the leeway is 0.
func (s *Server) clockWarnThreshold() time.Duration {
	if s.cfg.JWTLeeway > 0 {
		return s.cfg.JWTLeeway / 2
	}
	return 30 * time.Second
}

// forwardClock is the peer Forward kind of clock measurements: the
// question and the answer are each one google.protobuf.Timestamp.
const forwardClock = "clock/v1"

// newClock makes the member's clock. The member's local clock is time.Now
// shifted by --test-clock-offset (0 outside tests). It asks the leader
// through s.node, which must be set before runClock.
func (s *Server) newClock(self uint64) (*clock.Clock, error) {
	shift := s.cfg.TestClockOffset
	if shift != 0 {
		s.log.Warn("TEST ONLY: this member's clock is shifted by --test-clock-offset", "test_clock_offset", shift.String())
	}
	return clock.New(clock.Config{
		Source:        clock.Source(s.cfg.TimeSource),
		Local:         func() time.Time { return time.Now().Add(shift) },
		MaxCorrection: s.cfg.MaxClockCorrection,
		WarnThreshold: s.clockWarnThreshold(),
		Self:          self,
		Leader:        func() uint64 { return s.node.Leader() },
		Exchange: func(ctx context.Context, leader uint64, q []byte) ([]byte, error) {
			return s.node.Forward(ctx, leader, forwardClock, q)
		},
		Logger: s.log,
	})
}

// runClock answers other members' clock questions and measures this
// member's offset until ctx ends.
func (s *Server) runClock(ctx context.Context) {
	s.node.HandleForwards(forwardClock, func(_ context.Context, _ uint64, q []byte) ([]byte, error) {
		return s.clock.Answer(q)
	})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.clock.Run(ctx) }()
}

// clockStatus is this member's clock as its MemberStatus reports it.
func (s *Server) clockStatus() *raftstorev1.ClockStatus {
	st := s.clock.Status()
	out := &raftstorev1.ClockStatus{TimeSource: string(st.Source), Applied: st.Applied, Refused: st.Refused}
	if st.Measured {
		out.Offset, out.Rtt = durationpb.New(st.Offset), durationpb.New(st.RTT)
	}
	return out
}

// memberClock is a member's clock report in the public status.
func memberClock(c *raftstorev1.ClockStatus) *tokenstorev1.MemberClock {
	if c == nil {
		return nil
	}
	return &tokenstorev1.MemberClock{Offset: c.GetOffset(), Rtt: c.GetRtt(), TimeSource: c.GetTimeSource(), Applied: c.GetApplied(), Refused: c.GetRefused()}
}

// registerClock exports the clock's state, read at scrape time.
func (m *metrics) registerClock(c *clock.Clock) {
	gauge := func(name, help string, f func(clock.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(c.Status()) })
	}
	m.reg.MustRegister(
		gauge("tokenstore_clock_offset_seconds", "Leader's clock minus this member's, as last measured over the peer transport (0 on the leader and before the first measurement; see tokenstore_clock_offset_known).",
			func(s clock.Status) float64 { return s.Offset.Seconds() }),
		gauge("tokenstore_clock_offset_rtt_seconds", "Round trip of the measurement the clock offset comes from; the offset is exact to within half of it.",
			func(s clock.Status) float64 { return s.RTT.Seconds() }),
		gauge("tokenstore_clock_offset_known", "1 once this member has measured its clock offset to a leader.",
			func(s clock.Status) float64 { return b2f(s.Measured) }),
		gauge("tokenstore_clock_correction_refused", "1 while the clock offset exceeds --max-clock-correction and is therefore not applied: this member's time checks may differ from the others'. Fix the clock (NTP).",
			func(s clock.Status) float64 { return b2f(s.Refused) }),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
