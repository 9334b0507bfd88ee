package clock

import (
	"testing"
	"time"
)

var base = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// sample builds the exchange a member whose clock is offset behind the
// peer's sees when the question takes out and the answer back.
func sample(at time.Time, offset, out, back time.Duration) Sample {
	return Sample{Sent: at, Peer: at.Add(out).Add(offset), Received: at.Add(out + back)}
}

func TestSampleSymmetricDelayIsExact(t *testing.T) {
	s := sample(base, 2*time.Minute, 3*time.Millisecond, 3*time.Millisecond)
	if got := s.Offset(); got != 2*time.Minute {
		t.Fatalf("offset %v, want 2m", got)
	}
	if got := s.RTT(); got != 6*time.Millisecond {
		t.Fatalf("rtt %v, want 6ms", got)
	}
}

// With all of the delay on one leg the error is exactly half the round
// trip, the bound the package doc states.
func TestSampleAsymmetricErrorIsAtMostHalfRTT(t *testing.T) {
	for _, c := range []struct{ out, back time.Duration }{{10 * time.Millisecond, 0}, {0, 10 * time.Millisecond}, {7 * time.Millisecond, 3 * time.Millisecond}} {
		s := sample(base, -2*time.Minute, c.out, c.back)
		err := s.Offset() - (-2 * time.Minute)
		if abs(err) > s.RTT()/2 {
			t.Errorf("out %v back %v: error %v exceeds half the rtt %v", c.out, c.back, err, s.RTT())
		}
		if want := (c.out - c.back) / 2; err != want {
			t.Errorf("out %v back %v: error %v, want %v", c.out, c.back, err, want)
		}
	}
}

func TestEstimatorPicksSmallestRTT(t *testing.T) {
	e := NewEstimator(4)
	if _, _, ok := e.Estimate(); ok {
		t.Fatal("estimate without samples")
	}
	// True offset 90s; the slow samples are skewed by their asymmetric delay.
	e.Add(sample(base, 90*time.Second, 40*time.Millisecond, time.Millisecond))
	e.Add(sample(base.Add(time.Second), 90*time.Second, time.Millisecond, time.Millisecond))
	e.Add(sample(base.Add(2*time.Second), 90*time.Second, time.Millisecond, 30*time.Millisecond))
	off, rtt, ok := e.Estimate()
	if !ok || off != 90*time.Second || rtt != 2*time.Millisecond {
		t.Fatalf("estimate %v rtt %v ok %v, want 90s from the 2ms sample", off, rtt, ok)
	}
}

func TestEstimatorForgetsBeyondWindow(t *testing.T) {
	e := NewEstimator(2)
	e.Add(sample(base, time.Second, 0, 0)) // best, but will fall out
	e.Add(sample(base.Add(time.Second), 5*time.Second, 2*time.Millisecond, 2*time.Millisecond))
	e.Add(sample(base.Add(2*time.Second), 5*time.Second, 3*time.Millisecond, 3*time.Millisecond))
	off, rtt, _ := e.Estimate()
	if off != 5*time.Second || rtt != 4*time.Millisecond {
		t.Fatalf("estimate %v rtt %v, want 5s from the 4ms sample (the 0ms one left the window)", off, rtt)
	}
}

func TestEstimatorDropsNegativeRTT(t *testing.T) {
	e := NewEstimator(4)
	if e.Add(Sample{Sent: base, Received: base.Add(-time.Millisecond), Peer: base}) {
		t.Fatal("kept a sample whose answer arrived before its question left")
	}
	if _, _, ok := e.Estimate(); ok {
		t.Fatal("estimate from a dropped sample")
	}
}
