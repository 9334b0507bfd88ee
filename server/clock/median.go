package clock

import (
	"slices"
	"time"
)

// median is the median of offsets (the mean of the middle two when their
// count is even), 0 for none. offsets is sorted in place.
func median(offsets []time.Duration) time.Duration {
	n := len(offsets)
	if n == 0 {
		return 0
	}
	slices.Sort(offsets)
	if n%2 == 1 {
		return offsets[n/2]
	}
	lo, hi := offsets[n/2-1], offsets[n/2]
	return lo + (hi-lo)/2
}
