package clock

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// sim is a cluster on a simulated time line, seen from member 1: every
// member's clock is the true time plus its skew, answers arrive at once
// (round trip 0) and tests move time with advance.
type sim struct {
	mu     sync.Mutex
	now    time.Time // true time
	skew   map[uint64]time.Duration
	down   map[uint64]bool
	voters []uint64
	self   uint64
	// olderLeader is the member that answers as a leader of the release
	// that followed the leader's clock, 0 for none.
	olderLeader uint64
	// corr and synced are what each peer says it corrects by and whether
	// it is synchronised (0 and false when absent).
	corr   map[uint64]time.Duration
	synced map[uint64]bool
}

func newSim(skews ...time.Duration) *sim {
	s := &sim{now: base, skew: map[uint64]time.Duration{}, down: map[uint64]bool{}, self: 1,
		corr: map[uint64]time.Duration{}, synced: map[uint64]bool{}}
	for i, d := range skews {
		id := uint64(i + 1)
		s.skew[id] = d
		s.voters = append(s.voters, id)
	}
	return s
}

func (s *sim) local(id uint64) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now.Add(s.skew[id])
}

func (s *sim) advance(d time.Duration) {
	s.mu.Lock()
	s.now = s.now.Add(d)
	s.mu.Unlock()
}

func (s *sim) set(f func(s *sim)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *sim) config(src Source) Config {
	return Config{
		Source: src, Local: func() time.Time { return s.local(s.self) }, MaxCorrection: 10 * time.Minute,
		Self: s.self,
		Voters: func() []uint64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return append([]uint64(nil), s.voters...)
		},
		Exchange: func(_ context.Context, id uint64, q []byte) ([]byte, bool, error) {
			if _, err := decodeTime(q); err != nil {
				return nil, false, err
			}
			s.mu.Lock()
			down, older := s.down[id], s.olderLeader == id
			s.mu.Unlock()
			if down {
				return nil, false, errors.New("unreachable")
			}
			if older {
				a, err := proto.Marshal(timestamppb.New(s.local(id)))
				return a, true, err
			}
			s.mu.Lock()
			corr, synced := s.corr[id], s.synced[id]
			s.mu.Unlock()
			a, err := proto.Marshal(&raftstorev1.ClockAnswer{Local: timestamppb.New(s.local(id)), Correction: durationpb.New(corr), Synced: synced})
			return a, false, err
		},
	}
}

func (s *sim) clock(t *testing.T, src Source, mod func(*Config)) *Clock {
	t.Helper()
	cfg := s.config(src)
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// trueOffset is Now's distance from the simulated true time.
func (s *sim) trueOffset(c *Clock) time.Duration {
	now := c.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.now)
}

func measure(c *Clock, rounds int) {
	for range rounds {
		c.measure(context.Background())
	}
}

func TestBeforeMeasurementNowIsLocal(t *testing.T) {
	s := newSim(2*time.Minute, 0, 0)
	s.down[2], s.down[3] = true, true
	c := s.clock(t, SourceCluster, nil)
	if got, want := c.Now(), s.local(1); !got.Equal(want) {
		t.Fatalf("Now %v, want the local clock %v", got, want)
	}
	if c.Ready() == nil {
		t.Fatal("ready before any round")
	}
	measure(c, 1)
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready after a round that asked every voter: %v", err)
	}
	if st := c.Status(); st.Measured || st.Correction != 0 || st.Clocks != 1 || st.Voters != 3 {
		t.Fatalf("status %+v after a round no peer answered, want unmeasured, own clock only", st)
	}
}

// With three voters, the member whose clock is off follows the other two,
// and the other two ignore it, whoever leads (leadership plays no part).
func TestMedianOfThreeOutvotesOneSkewedClock(t *testing.T) {
	for _, skew := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
		for self := uint64(1); self <= 3; self++ {
			s := newSim(0, 0, skew) // member 3 is skewed
			s.self = self
			c := s.clock(t, SourceCluster, nil)
			measure(c, 1)
			st := c.Status()
			if got := s.trueOffset(c); got != 0 {
				t.Errorf("skew %v, member %d: cluster time is %v off the majority's, want 0 (status %+v)", skew, self, got, st)
			}
			if !st.Measured || !st.Synced || st.Clocks != 3 || st.Outlier != (self == 3 && st.Offset != 0 && c.cfg.OutlierThreshold > 0) {
				t.Errorf("skew %v, member %d: status %+v", skew, self, st)
			}
		}
	}
}

func TestFiveMembersTwoSkewedInOppositeDirections(t *testing.T) {
	skews := []time.Duration{0, 0, -2 * time.Minute, 0, 2 * time.Minute}
	for self := uint64(1); self <= 5; self++ {
		s := newSim(skews...)
		s.self = self
		c := s.clock(t, SourceCluster, func(c *Config) { c.OutlierThreshold = time.Second })
		measure(c, 1)
		st := c.Status()
		if got := s.trueOffset(c); got != 0 {
			t.Errorf("member %d (skew %v): cluster time %v off, want 0", self, skews[self-1], got)
		}
		if want := skews[self-1] != 0; st.Outlier != want || st.Clocks != 5 {
			t.Errorf("member %d: outlier %v of %d clocks, want %v of 5", self, st.Outlier, st.Clocks, want)
		}
	}
}

// With one of three members unreachable from the start, two clocks remain:
// their median is the midpoint, the same on both sides, so the two still
// decide alike.
func TestTwoClocksMeetHalfway(t *testing.T) {
	a, b := newSim(0, 0, 2*time.Minute), newSim(0, 0, 2*time.Minute)
	a.down[2], b.down[2] = true, true
	b.self = 3
	ca, cb := a.clock(t, SourceCluster, nil), b.clock(t, SourceCluster, nil)
	measure(ca, 1)
	measure(cb, 1)
	if oa, ob := a.trueOffset(ca), b.trueOffset(cb); oa != time.Minute || ob != time.Minute {
		t.Fatalf("cluster time of the two members: %v and %v off the true time, want both +1m", oa, ob)
	}
}

// A voter that stops answering keeps its last estimate in the median for
// MaxSampleAge: a slow member stays corrected while one of the two good
// members is down.
func TestDownVoterKeepsVotingForMaxSampleAge(t *testing.T) {
	s := newSim(-2*time.Minute, 0, 0) // this member is slow
	c := s.clock(t, SourceCluster, func(c *Config) { c.MaxSampleAge = time.Minute })
	measure(c, 1)
	s.set(func(s *sim) { s.down[3] = true })
	s.advance(59 * time.Second)
	measure(c, 1)
	if got, st := s.trueOffset(c), c.Status(); got != 0 || st.Clocks != 3 {
		t.Fatalf("59s after member 3 went down: %v off, %d clocks, want 0 off of 3 clocks", got, st.Clocks)
	}
	s.advance(2 * time.Second)
	measure(c, 1)
	st := c.Status()
	if st.Clocks != 2 || st.Offset != time.Minute {
		t.Fatalf("past MaxSampleAge: %d clocks, target %v, want 2 clocks and the midpoint +1m", st.Clocks, st.Offset)
	}
	if len(st.Peers) != 2 || st.Peers[1].ID != 3 || st.Peers[1].Counted {
		t.Fatalf("peers %+v, want member 3 reported but not counted", st.Peers)
	}
}

// Once synchronised, a lower target is slewed to: cluster time keeps
// running forward (at 1 − SlewRate) until it meets it; a higher one is
// stepped to at once.
func TestSynchronisedClockNeverRunsBackwards(t *testing.T) {
	s := newSim(-2*time.Minute, 0, 0)
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1) // synchronised at +2m
	if st := c.Status(); !st.Synced || st.Correction != 2*time.Minute {
		t.Fatalf("status %+v, want synchronised at +2m", st)
	}
	// This member's clock is fixed (stepped forward by 2m): the target
	// drops to 0, and the correction must not follow at once.
	s.set(func(s *sim) { s.skew[1] = 0 })
	prev := c.Now()
	measure(c, 1)
	if st := c.Status(); st.Offset != 0 || st.Correction != 2*time.Minute {
		t.Fatalf("status %+v, want target 0 with the correction still +2m", st)
	}
	for range 300 {
		s.advance(time.Second)
		measure(c, 1)
		now := c.Now()
		if d := now.Sub(prev); d < time.Second/2 {
			t.Fatalf("cluster time advanced %v in a second of real time, want at least 1 − SlewRate of it", d)
		}
		prev = now
	}
	if got := s.trueOffset(c); got != 0 {
		t.Fatalf("after 300 s of slewing: %v off, want 0", got)
	}
	// A higher target is stepped to.
	s.set(func(s *sim) { s.skew[1] = -time.Minute })
	measure(c, 1)
	if got := s.trueOffset(c); got != 0 {
		t.Fatalf("after the clock fell back a minute: %v off, want 0 at once", got)
	}
}

// Until every voter has been measured (or SyncGrace passed), the member
// steps in either direction: a fast member that starts before its peers
// must not spend minutes slewing back from a partial estimate.
func TestStepsUntilSynchronised(t *testing.T) {
	s := newSim(2*time.Minute, 0, 0) // this member is fast
	s.down[3] = true
	c := s.clock(t, SourceCluster, func(c *Config) { c.SyncGrace = 5 * time.Second })
	measure(c, 1)
	if st := c.Status(); st.Synced || st.Correction != -time.Minute {
		t.Fatalf("one peer of two: status %+v, want not synchronised, stepped to the midpoint −1m", st)
	}
	s.set(func(s *sim) { s.down[3] = false })
	measure(c, 1)
	if got, st := s.trueOffset(c), c.Status(); got != 0 || !st.Synced {
		t.Fatalf("every voter measured: %v off (status %+v), want stepped to 0 and synchronised", got, st)
	}

	// SyncGrace: a voter that never answers does not keep the member
	// stepping for ever.
	s2 := newSim(0, 0, 0)
	s2.down[3] = true
	c2 := s2.clock(t, SourceCluster, func(c *Config) { c.SyncGrace = 5 * time.Second })
	measure(c2, 1)
	if c2.Status().Synced {
		t.Fatal("synchronised with a voter never measured, before SyncGrace")
	}
	s2.advance(5 * time.Second)
	measure(c2, 1)
	if !c2.Status().Synced {
		t.Fatal("not synchronised after SyncGrace with one peer measured")
	}
}

func TestLearnerTakesTheVotersMedian(t *testing.T) {
	s := newSim(0, 0, 0, 90*time.Second)
	s.voters = []uint64{1, 2, 3}
	s.self = 4
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	if got, st := s.trueOffset(c), c.Status(); got != 0 || st.Clocks != 3 {
		t.Fatalf("learner: %v off of %d clocks, want 0 off, the three voters' clocks", got, st.Clocks)
	}
}

func TestRemovedVoterIsForgotten(t *testing.T) {
	s := newSim(0, 2*time.Minute, 2*time.Minute)
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	s.set(func(s *sim) { s.voters = []uint64{1, 2} })
	measure(c, 1)
	if st := c.Status(); st.Clocks != 2 || len(st.Peers) != 1 {
		t.Fatalf("after member 3 was removed: %d clocks, peers %+v, want 2 and one peer", st.Clocks, st.Peers)
	}
}

func TestLocalSourceMeasuresButDoesNotCorrect(t *testing.T) {
	s := newSim(-2*time.Minute, 0, 0)
	c := s.clock(t, SourceLocal, nil)
	measure(c, 1)
	st := c.Status()
	if !st.Measured || st.Offset != 2*time.Minute || st.Applied || st.Correction != 0 {
		t.Fatalf("status %+v, want +2m measured, not applied", st)
	}
	if got, want := c.Now(), s.local(1); !got.Equal(want) {
		t.Fatalf("Now %v, want the local clock %v", got, want)
	}
}

func TestCorrectionPastBoundIsRefused(t *testing.T) {
	var logs bytes.Buffer
	s := newSim(-time.Minute, 0, 0)
	c := s.clock(t, SourceCluster, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	measure(c, 1)
	s.set(func(s *sim) { s.skew[1] = -11 * time.Minute })
	measure(c, 3)
	st := c.Status()
	if !st.Refused || st.Applied || st.Offset != 11*time.Minute || st.Correction != time.Minute {
		t.Fatalf("status %+v, want 11m refused with the last correction (1m) kept", st)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d errors logged for one refusal, want 1:\n%s", n, logs.String())
	}
	s.set(func(s *sim) { s.skew[1] = -3 * time.Minute })
	measure(c, 1)
	if st := c.Status(); st.Refused || st.Correction != 3*time.Minute {
		t.Fatalf("back within bound: status %+v, want +3m applied (a step forward)", st)
	}
}

func TestOutlierOncePerCrossing(t *testing.T) {
	var logs bytes.Buffer
	s := newSim(40*time.Second, 0, 0)
	c := s.clock(t, SourceCluster, func(c *Config) {
		c.OutlierThreshold = 30 * time.Second
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	measure(c, 3)
	if !c.Status().Outlier {
		t.Fatal("40 s off the others: not an outlier")
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one crossing, want 1:\n%s", n, logs.String())
	}
	s.set(func(s *sim) { s.skew[1] = time.Second })
	measure(c, DefaultWindow+1)
	if c.Status().Outlier {
		t.Fatal("1 s off: still an outlier")
	}
	s.set(func(s *sim) { s.skew[1] = -time.Minute })
	measure(c, DefaultWindow+1)
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings for two crossings, want 2:\n%s", n, logs.String())
	}
}

func TestAnswer(t *testing.T) {
	s := newSim(-2*time.Minute, 0, 0)
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	q, _ := proto.Marshal(timestamppb.New(s.local(1)))
	a, err := c.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	local, corr, synced, err := decodeAnswer(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.local(1); !local.Equal(want) || corr != 2*time.Minute || !synced {
		t.Fatalf("Answer %v %v %v, want the uncorrected local clock %v, its correction +2m, synchronised", local, corr, synced, want)
	}
	a, err = c.AnswerClusterTime(q)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustTime(t, a), s.local(2); !got.Equal(want) {
		t.Fatalf("AnswerClusterTime %v, want cluster time %v", got, want)
	}
	if _, err := c.Answer([]byte{0xff}); err == nil {
		t.Fatal("a malformed question was answered")
	}
	if _, err := c.AnswerClusterTime([]byte{0xff}); err == nil {
		t.Fatal("a malformed question was answered")
	}
}

func mustTime(t *testing.T, b []byte) time.Time {
	t.Helper()
	v, err := decodeTime(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNewRefusesBadConfig(t *testing.T) {
	s := newSim(0)
	for name, mod := range map[string]func(*Config){
		"source":         func(c *Config) { c.Source = "ntp" },
		"max correction": func(c *Config) { c.MaxCorrection = 0 },
		"outlier":        func(c *Config) { c.OutlierThreshold = -time.Second },
		"slew rate":      func(c *Config) { c.SlewRate = 1.5 },
		"exchange":       func(c *Config) { c.Exchange = nil },
		"voters":         func(c *Config) { c.Voters = nil },
	} {
		cfg := s.config(SourceCluster)
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Run measures on its own (with the real clock on both sides here) and
// returns once its context ends.
func TestRunMeasuresAndStops(t *testing.T) {
	// Exchange signals once it is called after a round applied an offset.
	measured := make(chan struct{}, 1)
	var c *Clock
	c, err := New(Config{
		Source: SourceCluster, MaxCorrection: 10 * time.Minute, Interval: 20 * time.Millisecond, Self: 2,
		Voters: func() []uint64 { return []uint64{1, 2, 3} },
		Exchange: func(_ context.Context, _ uint64, _ []byte) ([]byte, bool, error) {
			if c.Status().Measured {
				select {
				case measured <- struct{}{}:
				default:
				}
			}
			a, err := proto.Marshal(&raftstorev1.ClockAnswer{Local: timestamppb.New(time.Now().Add(-2 * time.Minute))})
			return a, false, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	<-measured
	st := c.Status()
	if d := st.Offset + 2*time.Minute; !st.Measured || d < -time.Second || d > time.Second {
		t.Fatalf("status %+v, want about -2m measured", st)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// While an older release's member leads, a member of this release takes
// the leader's clock, as the older members do; once it no longer answers
// that way, the median applies again.
func TestOlderLeaderIsFollowed(t *testing.T) {
	s := newSim(0, 0, -2*time.Minute) // the older leader, member 3, is slow
	s.olderLeader = 3
	s.down[2] = true // an older follower answers no question of this release
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	if st := c.Status(); !st.OlderLeader || st.Offset != -2*time.Minute {
		t.Fatalf("status %+v, want the older leader's clock (-2m) followed", st)
	}
	// This member takes over leadership: the older leader no longer
	// answers, the older follower never did. It keeps the old leader's
	// clock rather than the midpoint of its own and that one.
	s.set(func(s *sim) { s.olderLeader, s.down[3] = 0, true })
	measure(c, 1)
	if st := c.Status(); !st.OlderLeader || st.Offset != -2*time.Minute {
		t.Fatalf("status %+v, want the older leader's clock (-2m) kept while no member of this release answers", st)
	}
	// Members of this release answer: the median applies.
	s.set(func(s *sim) { s.down[2], s.down[3] = false, false })
	measure(c, 1)
	if st := c.Status(); st.OlderLeader || st.Offset != 0 {
		t.Fatalf("status %+v, want the median (0) once members of this release answer", st)
	}
}

func TestSingleVoterIsSynchronisedAtOnce(t *testing.T) {
	s := newSim(time.Minute)
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	if st := c.Status(); !st.Synced || st.Clocks != 1 || st.Offset != 0 {
		t.Fatalf("status %+v, want synchronised on its own clock", st)
	}
}

// A member that starts while the synchronised members are slewing down
// toward a lower target takes up the cluster time they decide with now and
// slews with them, instead of jumping to the target ahead of them.
func TestStartingMemberJoinsTheOthersSlew(t *testing.T) {
	s := newSim(0, 0, 0)
	// Peers 2 and 3 are synchronised and still 30 s above the target (0),
	// slewing down.
	s.corr[2], s.corr[3] = 30*time.Second, 30*time.Second
	s.synced[2], s.synced[3] = true, true
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	if st := c.Status(); !st.Synced || st.Offset != 0 || st.Correction != 30*time.Second {
		t.Fatalf("status %+v, want target 0 with the correction starting at the peers' +30s", st)
	}
	s.advance(10 * time.Second)
	if got := c.Status().Correction; got != 25*time.Second {
		t.Fatalf("10 s later the correction is %v, want 25s (slewing at half speed, as the peers do)", got)
	}
	// Peers not yet synchronised say nothing about where cluster time is.
	s2 := newSim(0, 0, 0)
	s2.corr[2], s2.corr[3] = 30*time.Second, 30*time.Second
	c2 := s2.clock(t, SourceCluster, nil)
	measure(c2, 1)
	if got := c2.Status().Correction; got != 0 {
		t.Fatalf("with unsynchronised peers the correction is %v, want the target 0", got)
	}
}

// BenchmarkNow is the cost cluster time adds to every authentication.
func BenchmarkNow(b *testing.B) {
	c, err := New(Config{Source: SourceCluster, MaxCorrection: time.Minute, Voters: func() []uint64 { return nil },
		Exchange: func(context.Context, uint64, []byte) ([]byte, bool, error) { return nil, false, errors.New("none") }})
	if err != nil {
		b.Fatal(err)
	}
	c.applied.Store(&slew{base: time.Second, target: 0, at: time.Now(), rate: DefaultSlewRate}) // slewing: the longest path
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.Now()
		}
	})
}

func BenchmarkTimeNow(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = time.Now()
		}
	})
}

// Before the member knows the voters (its membership is not loaded yet),
// a round concludes nothing: not synchronised, not ready, so the first
// real round may still step.
func TestNoVotersKnownIsNotSynchronised(t *testing.T) {
	s := newSim(0, 0, 2*time.Minute)
	s.self = 3 // the fast member
	voters := s.voters
	s.voters = nil
	c := s.clock(t, SourceCluster, nil)
	measure(c, 1)
	if st := c.Status(); st.Synced || c.Ready() == nil {
		t.Fatalf("with no voters known: status %+v, ready %v; want neither synchronised nor ready", st, c.Ready())
	}
	s.set(func(s *sim) { s.voters = voters })
	measure(c, 1)
	if got, st := s.trueOffset(c), c.Status(); got != 0 || !st.Synced || c.Ready() != nil {
		t.Fatalf("voters known: %v off (status %+v), want stepped to the majority and synchronised", got, st)
	}
}
