package clock

import "time"

// Sample is one question to a peer and its answer, in local clock
// readings except Peer.
type Sample struct {
	// Sent is the local clock when the question left (t0).
	Sent time.Time
	// Received is the local clock when the answer arrived (t3).
	Received time.Time
	// Peer is the peer's clock in the answer, read in between.
	Peer time.Time
	// PeerCorrection is what the peer added to its clock when it answered,
	// PeerSynced whether it was synchronised (false from an older
	// release's leader, which reports neither).
	PeerCorrection time.Duration
	PeerSynced     bool
}

// RTT is the round trip: how far the peer's reading may be from the
// middle of [Sent, Received] is at most half of it.
func (s Sample) RTT() time.Duration { return s.Received.Sub(s.Sent) }

// Offset is peer − local at the moment the peer read its clock,
// assuming it did so halfway through the round trip: Peer − (t0+t3)/2.
func (s Sample) Offset() time.Duration { return s.Peer.Sub(s.Sent.Add(s.RTT() / 2)) }

// Estimator keeps the latest samples of one peer's clock and estimates the
// offset from the one with the smallest round trip, the tightest bound.
// The zero value is not usable; see NewEstimator. Not safe for concurrent
// use (Clock.Run owns it).
type Estimator struct {
	window  int
	samples []Sample // oldest first, at most window
}

// NewEstimator keeps the last window samples (at least 1).
func NewEstimator(window int) *Estimator {
	if window < 1 {
		window = 1
	}
	return &Estimator{window: window}
}

// Add records a sample, forgetting the oldest beyond the window. A sample
// with a negative round trip (the local clock stepped back between the
// readings) says nothing and is dropped; Add reports whether it was kept.
func (e *Estimator) Add(s Sample) bool {
	if s.RTT() < 0 {
		return false
	}
	if len(e.samples) == e.window {
		copy(e.samples, e.samples[1:])
		e.samples = e.samples[:len(e.samples)-1]
	}
	e.samples = append(e.samples, s)
	return true
}

// Latest is the most recent kept sample, ok false when none is kept.
func (e *Estimator) Latest() (Sample, bool) {
	if len(e.samples) == 0 {
		return Sample{}, false
	}
	return e.samples[len(e.samples)-1], true
}

// Estimate is the offset and round trip of the kept sample with the
// smallest round trip (the latest of equals), ok false when none is kept.
func (e *Estimator) Estimate() (offset, rtt time.Duration, ok bool) {
	best := -1
	for i, s := range e.samples {
		if best < 0 || s.RTT() <= e.samples[best].RTT() {
			best = i
		}
	}
	if best < 0 {
		return 0, 0, false
	}
	return e.samples[best].Offset(), e.samples[best].RTT(), true
}
