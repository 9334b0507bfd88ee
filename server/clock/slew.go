package clock

import "time"

// slew is an applied correction as a function of the local clock: it
// starts at base when the local clock read at and moves toward target,
// stepping up at once and coming down at rate (seconds of correction per
// second of local time, at most 1), so that local + correction never
// decreases. A slew is immutable; Clock swaps whole values atomically.
type slew struct {
	base, target time.Duration
	at           time.Time // local clock (with its monotonic reading) when base held
	rate         float64
}

// correction is the applied correction when the local clock reads now.
func (s *slew) correction(now time.Time) time.Duration {
	if s.base <= s.target {
		return s.target
	}
	elapsed := now.Sub(s.at)
	if elapsed <= 0 {
		return s.base
	}
	c := s.base - time.Duration(float64(elapsed)*s.rate)
	if c < s.target {
		return s.target
	}
	return c
}

// toward is the slew from the correction at now to target: a step when
// step is set or target is not below it, a slew down otherwise.
func (s *slew) toward(now time.Time, target time.Duration, step bool) *slew {
	cur := s.correction(now)
	if step || target >= cur {
		return &slew{base: target, target: target, at: now, rate: s.rate}
	}
	return &slew{base: cur, target: target, at: now, rate: s.rate}
}
