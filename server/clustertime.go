package server

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/clock"
)

// Cluster time: every time check on a member (token expiry on every
// authentication path, JWT nbf/iat/exp, and the times it stamps into
// proposals: created, expiry from a TTL, revoked, imported, lastUsedAt)
// reads s.clock.Now(), the member's clock corrected toward the median of
// the voters' clocks (server/clock). Apply reads no clock: stamped times
// travel in the entries. Raft ticks, timeouts and elapsed-time bookkeeping
// (autopilot's "dead for", request deadlines) stay on the monotonic clock:
// they measure durations on this member, and a correction applied in
// between would distort them.

// DefaultMaxClockCorrection is the default --max-clock-correction. A clock
// a few minutes off (a VM resumed after a pause, NTP not running) is what
// the correction is for; an offset of more than 10 minutes is a broken
// clock or time zone setup, and following it silently would hide that, so
// it is refused and alarmed instead.
const DefaultMaxClockCorrection = 10 * time.Minute

// DefaultClockOutlierThreshold is the default --clock-outlier-threshold:
// hosts kept by NTP agree to milliseconds, so a member a second off the
// others has a clock to fix, long before the correction reaches a limit.
const DefaultClockOutlierThreshold = time.Second

// Peer Forward kinds of clock measurements; the question and the answer
// are each one google.protobuf.Timestamp. clock/v2 is answered by every
// member with its own clock; clock/v1, what the release that followed the
// leader's clock asks, only by the leader, with its cluster time.
const (
	forwardClock   = "clock/v2"
	forwardClockV1 = "clock/v1"
)

// newClock makes the member's clock. The member's local clock is time.Now
// shifted by --test-clock-offset (0 outside tests). It asks the other
// voters through s.node, which must be set before runClock.
func (s *Server) newClock(self uint64) (*clock.Clock, error) {
	shift := s.cfg.TestClockOffset
	if shift != 0 {
		s.log.Warn("TEST ONLY: this member's clock is shifted by --test-clock-offset", "test_clock_offset", shift.String())
	}
	return clock.New(clock.Config{
		Source:           clock.Source(s.cfg.TimeSource),
		Local:            func() time.Time { return time.Now().Add(shift) },
		MaxCorrection:    s.cfg.MaxClockCorrection,
		OutlierThreshold: s.cfg.ClockOutlierThreshold,
		Self:             self,
		Voters:           func() []uint64 { return s.node.Voters() },
		Exchange:         s.askClock,
		Logger:           s.log,
	})
}

// askClock asks member id for its clock. A member of the release that
// followed the leader's clock knows only clock/v1, which it answers while
// it leads, with its own clock (a leader there corrects by nothing): the
// clock then follows that leader, as the older members do (server/clock,
// Rolling upgrades).
func (s *Server) askClock(ctx context.Context, id uint64, q []byte) (_ []byte, olderLeader bool, _ error) {
	a, err := s.node.Forward(ctx, id, forwardClock, q)
	if err != nil && id == s.node.Leader() {
		if a1, err1 := s.node.Forward(ctx, id, forwardClockV1, q); err1 == nil {
			return a1, true, nil
		}
	}
	return a, false, err
}

// runClock answers other members' clock questions and measures this
// member's offset until ctx ends.
func (s *Server) runClock(ctx context.Context) {
	s.node.HandleForwards(forwardClock, func(_ context.Context, _ uint64, q []byte) ([]byte, error) {
		return s.clock.Answer(q)
	})
	s.node.HandleForwards(forwardClockV1, func(_ context.Context, _ uint64, q []byte) ([]byte, error) {
		if l := s.node.Leader(); l != s.node.ID() {
			return nil, fmt.Errorf("clock question: this member is not the leader (leader %016x)", l)
		}
		return s.clock.AnswerClusterTime(q)
	})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.clock.Run(ctx) }()
}

// clockStatus is this member's clock as its MemberStatus reports it.
func (s *Server) clockStatus() *raftstorev1.ClockStatus {
	st := s.clock.Status()
	out := &raftstorev1.ClockStatus{
		TimeSource: string(st.Source), Applied: st.Applied, Refused: st.Refused,
		Correction: durationpb.New(st.Correction), Outlier: st.Outlier,
		Clocks: uint32(st.Clocks), Voters: uint32(st.Voters), Synced: st.Synced, OlderLeader: st.OlderLeader,
	}
	if st.Measured {
		out.Offset, out.Rtt = durationpb.New(st.Offset), durationpb.New(st.RTT)
	}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, &raftstorev1.PeerClock{
			Id: p.ID, Offset: durationpb.New(p.Offset), Rtt: durationpb.New(p.RTT), Age: durationpb.New(p.Age), Counted: p.Counted,
		})
	}
	return out
}

// memberClock is a member's clock report in the public status; names maps
// member ids to names.
func memberClock(c *raftstorev1.ClockStatus, names map[uint64]string) *tokenstorev1.MemberClock {
	if c == nil {
		return nil
	}
	out := &tokenstorev1.MemberClock{
		Offset: c.GetOffset(), Rtt: c.GetRtt(), TimeSource: c.GetTimeSource(), Applied: c.GetApplied(), Refused: c.GetRefused(),
		Correction: c.GetCorrection(), Outlier: c.GetOutlier(), Clocks: c.GetClocks(), Voters: c.GetVoters(), Synced: c.GetSynced(),
		OlderLeader: c.GetOlderLeader(),
	}
	for _, p := range c.GetPeers() {
		out.Peers = append(out.Peers, &tokenstorev1.PeerClock{
			Name: names[p.GetId()], Id: p.GetId(), Offset: p.GetOffset(), Rtt: p.GetRtt(), Age: p.GetAge(), Counted: p.GetCounted(),
		})
	}
	return out
}

// registerClock exports the clock's state, read at scrape time; names maps
// member ids to names for the per-peer series.
func (m *metrics) registerClock(c *clock.Clock, names func() map[uint64]string) {
	gauge := func(name, help string, f func(clock.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(c.Status()) })
	}
	m.reg.MustRegister(
		gauge("tokenstore_clock_offset_seconds", "Cluster time (the median of the voters' clocks) minus this member's clock: how far this member's own clock is off the cluster's (0 before any other member's clock is known; see tokenstore_clock_offset_known).",
			func(s clock.Status) float64 { return s.Offset.Seconds() }),
		gauge("tokenstore_clock_correction_seconds", "What this member adds to its clock for every time check now: the offset once reached, less while slewing down toward it (cluster time never runs backwards), 0 with --time-source local.",
			func(s clock.Status) float64 { return s.Correction.Seconds() }),
		gauge("tokenstore_clock_offset_rtt_seconds", "Largest round trip of the measurements the clock offset comes from; the offset is exact to within half of it.",
			func(s clock.Status) float64 { return s.RTT.Seconds() }),
		gauge("tokenstore_clock_offset_known", "1 once this member has measured another member's clock.",
			func(s clock.Status) float64 { return b2f(s.Measured) }),
		gauge("tokenstore_clock_clocks", "How many voters' clocks (this member's own included when it votes) cluster time is the median of; 1 means this member decides with its own clock.",
			func(s clock.Status) float64 { return float64(s.Clocks) }),
		gauge("tokenstore_clock_outlier", "1 while this member's clock is further than --clock-outlier-threshold from cluster time: its decisions are corrected, but its host's clock needs fixing (NTP).",
			func(s clock.Status) float64 { return b2f(s.Outlier) }),
		gauge("tokenstore_clock_correction_refused", "1 while cluster time is further than --max-clock-correction from this member's clock and is therefore not applied: this member's time checks may differ from the others'. Fix the clock (NTP).",
			func(s clock.Status) float64 { return b2f(s.Refused) }),
		&peerClockCollector{c: c, names: names},
	)
}

// peerClockCollector exports this member's measurement of every other
// voter's clock, labelled by that member's name.
type peerClockCollector struct {
	c     *clock.Clock
	names func() map[uint64]string
}

var peerClockDesc = prometheus.NewDesc("tokenstore_clock_peer_offset_seconds",
	"Another voter's clock minus this member's, as this member last measured it (counted in the median while measured within the last 15 minutes).",
	[]string{"peer"}, nil)

func (p *peerClockCollector) Describe(ch chan<- *prometheus.Desc) { ch <- peerClockDesc }

func (p *peerClockCollector) Collect(ch chan<- prometheus.Metric) {
	names := p.names()
	for _, pc := range p.c.Status().Peers {
		name := names[pc.ID]
		if name == "" {
			name = fmt.Sprintf("%016x", pc.ID)
		}
		ch <- prometheus.MustNewConstMetric(peerClockDesc, prometheus.GaugeValue, pc.Offset.Seconds(), name)
	}
}

// memberNames maps every member's id to its name (empty on error).
func (s *Server) memberNames() map[uint64]string {
	out := map[uint64]string{}
	ms, err := s.node.Members()
	if err != nil {
		return out
	}
	for _, m := range ms {
		out[m.GetId()] = m.GetName()
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
