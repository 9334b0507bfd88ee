package clock

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pair is a follower (id 2) and a leader (id 1) whose clock is ahead of
// the follower's by skew, on a simulated time line: measure is driven
// synchronously, and Exchange advances time by the network delays.
type pair struct {
	now    time.Time // the follower's local clock
	skew   time.Duration
	delay  time.Duration // each way
	leader uint64
	fail   error
}

func (p *pair) config(src Source) Config {
	return Config{
		Source: src, Local: func() time.Time { return p.now }, MaxCorrection: 10 * time.Minute,
		Self: 2, Leader: func() uint64 { return p.leader },
		Exchange: func(_ context.Context, leader uint64, q []byte) ([]byte, error) {
			if p.fail != nil {
				return nil, p.fail
			}
			if leader != 1 {
				return nil, errors.New("asked a non-leader")
			}
			if _, err := decodeTime(q); err != nil {
				return nil, err
			}
			p.now = p.now.Add(p.delay)
			a, err := proto.Marshal(timestamppb.New(p.now.Add(p.skew)))
			p.now = p.now.Add(p.delay)
			return a, err
		},
	}
}

func newPair(t *testing.T, src Source, skew time.Duration, mod func(*Config)) (*pair, *Clock) {
	t.Helper()
	p := &pair{now: base, skew: skew, delay: 2 * time.Millisecond, leader: 1}
	cfg := p.config(src)
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func TestBeforeMeasurementNowIsLocal(t *testing.T) {
	p, c := newPair(t, SourceCluster, 2*time.Minute, nil)
	if _, ok := c.Offset(); ok {
		t.Fatal("offset known before any measurement")
	}
	if got := c.Now(); !got.Equal(p.now) {
		t.Fatalf("Now %v, want the local clock %v", got, p.now)
	}
	p.leader = 0 // no leader: nothing measured
	c.measure(context.Background())
	if st := c.Status(); st.Measured || st.Correction != 0 {
		t.Fatalf("status %+v after a round without leader", st)
	}
}

func TestClusterSourceCorrectsNow(t *testing.T) {
	p, c := newPair(t, SourceCluster, 2*time.Minute, nil)
	c.measure(context.Background())
	off, ok := c.Offset()
	if !ok || off != 2*time.Minute {
		t.Fatalf("offset %v ok %v, want 2m", off, ok)
	}
	if got, want := c.Now(), p.now.Add(2*time.Minute); !got.Equal(want) {
		t.Fatalf("Now %v, want %v (local + offset)", got, want)
	}
	st := c.Status()
	if !st.Applied || st.Refused || st.Correction != 2*time.Minute || st.RTT != 4*time.Millisecond || st.Leader != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestLocalSourceMeasuresButDoesNotCorrect(t *testing.T) {
	p, c := newPair(t, SourceLocal, -2*time.Minute, nil)
	c.measure(context.Background())
	if off, ok := c.Offset(); !ok || off != -2*time.Minute {
		t.Fatalf("offset %v ok %v, want -2m", off, ok)
	}
	if got := c.Now(); !got.Equal(p.now) {
		t.Fatalf("Now %v, want the local clock %v", got, p.now)
	}
	if st := c.Status(); st.Applied || st.Refused || st.Correction != 0 {
		t.Fatalf("status %+v", st)
	}
}

// An offset past the bound is not applied; the last good one stays, and
// once the offset is within the bound again it is applied.
func TestCorrectionPastBoundIsRefused(t *testing.T) {
	var logs bytes.Buffer
	p, c := newPair(t, SourceCluster, time.Minute, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	c.measure(context.Background())
	if st := c.Status(); st.Correction != time.Minute || st.Refused {
		t.Fatalf("status %+v", st)
	}
	p.skew = time.Hour // the leader's clock jumped
	for range DefaultWindow + 1 {
		c.measure(context.Background())
	}
	st := c.Status()
	if !st.Refused || st.Applied || st.Offset != time.Hour || st.Correction != time.Minute {
		t.Fatalf("status %+v: want the 1h offset refused and the 1m correction kept", st)
	}
	if got, want := c.Now(), p.now.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("Now %v, want %v", got, want)
	}
	if n := strings.Count(logs.String(), "NOT correcting"); n != 1 {
		t.Fatalf("refusal logged %d times, want once:\n%s", n, logs.String())
	}
	p.skew = 30 * time.Second
	for range DefaultWindow + 1 {
		c.measure(context.Background())
	}
	if st := c.Status(); st.Refused || !st.Applied || st.Correction != 30*time.Second {
		t.Fatalf("status %+v after the leader's clock came back", st)
	}
}

func TestLeaderOffsetIsZero(t *testing.T) {
	p, c := newPair(t, SourceCluster, 2*time.Minute, nil)
	c.measure(context.Background())
	p.leader = 2 // this member now leads
	c.measure(context.Background())
	st := c.Status()
	if !st.Measured || st.Offset != 0 || st.Correction != 0 || st.Leader != 2 {
		t.Fatalf("status %+v, want offset 0 on the leader", st)
	}
	if got := c.Now(); !got.Equal(p.now) {
		t.Fatalf("leader's Now %v, want its local clock %v", got, p.now)
	}
}

func TestLastOffsetKeptWhileLeaderUnreachable(t *testing.T) {
	p, c := newPair(t, SourceCluster, -2*time.Minute, nil)
	c.measure(context.Background())
	p.fail = errors.New("connection refused")
	c.measure(context.Background())
	p.fail, p.leader = nil, 0
	c.measure(context.Background())
	if st := c.Status(); st.Correction != -2*time.Minute || st.Offset != -2*time.Minute {
		t.Fatalf("status %+v, want the last offset kept", st)
	}
}

func TestWarningOncePerCrossing(t *testing.T) {
	var logs bytes.Buffer
	p, c := newPair(t, SourceCluster, 40*time.Second, func(c *Config) {
		c.WarnThreshold = 30 * time.Second
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for range 3 {
		c.measure(context.Background())
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one crossing, want 1:\n%s", n, logs.String())
	}
	p.skew = time.Second
	for range DefaultWindow + 1 {
		c.measure(context.Background())
	}
	p.skew = -time.Minute
	for range DefaultWindow + 1 {
		c.measure(context.Background())
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings for two crossings, want 2:\n%s", n, logs.String())
	}
}

func TestAnswer(t *testing.T) {
	p, c := newPair(t, SourceCluster, 0, nil)
	q, _ := proto.Marshal(timestamppb.New(p.now))
	if _, err := c.Answer(q); err == nil || !strings.Contains(err.Error(), "not the leader") {
		t.Fatalf("a follower answered: %v", err)
	}
	p.leader = 2
	a, err := c.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := decodeTime(a); !got.Equal(p.now) {
		t.Fatalf("answer %v, want %v", got, p.now)
	}
	if _, err := c.Answer([]byte{0xff}); err == nil {
		t.Fatal("a malformed question was answered")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	p := &pair{}
	for name, mod := range map[string]func(*Config){
		"source":         func(c *Config) { c.Source = "ntp" },
		"max correction": func(c *Config) { c.MaxCorrection = 0 },
		"warn":           func(c *Config) { c.WarnThreshold = -time.Second },
		"exchange":       func(c *Config) { c.Exchange = nil },
	} {
		cfg := p.config(SourceCluster)
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Run measures on its own (with the real clock on both sides here) and
// returns once its context ends.
func TestRunMeasuresAndStops(t *testing.T) {
	c, err := New(Config{
		Source: SourceCluster, MaxCorrection: 10 * time.Minute, Interval: 20 * time.Millisecond, Self: 2,
		Leader: func() uint64 { return 1 },
		Exchange: func(_ context.Context, _ uint64, _ []byte) ([]byte, error) {
			return proto.Marshal(timestamppb.New(time.Now().Add(-2 * time.Minute)))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if off, ok := c.Offset(); ok {
			if d := off + 2*time.Minute; d < -time.Second || d > time.Second {
				t.Fatalf("offset %v, want about -2m", off)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no offset measured within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
