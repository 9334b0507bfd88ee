package loadgen

import (
	"fmt"
	"slices"
	"time"
)

// PairRatios returns, for every round in which both a and b ran, a's rate
// over b's. Rounds alternate, so the two of one round ran back to back
// under about the same machine load: the spread of these ratios is the
// honest error bar of a side-by-side comparison on a shared machine.
func PairRatios(rs []RoundResult, a, b string) []float64 {
	rates := map[string]map[int]float64{a: {}, b: {}}
	var rounds []int
	for i := range rs {
		r := &rs[i]
		if m, ok := rates[r.Label]; ok {
			m[r.Round] = r.Rate()
			if !slices.Contains(rounds, r.Round) {
				rounds = append(rounds, r.Round)
			}
		}
	}
	var out []float64
	for _, n := range rounds {
		ra, okA := rates[a][n]
		rb, okB := rates[b][n]
		if okA && okB && rb > 0 {
			out = append(out, ra/rb)
		}
	}
	return out
}

// RatioSpread formats ratios as "median 0.97 (0.91 to 1.04 over 6 rounds)".
func RatioSpread(ratios []float64) string {
	if len(ratios) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("median %.3f (%.3f to %.3f over %d rounds)", Median(ratios), slices.Min(ratios), slices.Max(ratios), len(ratios))
}

// CPUPerOp is the CPU time process proc spent per checked answer over the
// rounds labelled label, or 0 when unknown.
func CPUPerOp(rs []RoundResult, label, proc string) time.Duration {
	var cpu time.Duration
	ops := 0
	for i := range rs {
		if rs[i].Label != label {
			continue
		}
		d, ok := rs[i].CPU[proc]
		if !ok {
			return 0
		}
		cpu += d
		ops += rs[i].OK
	}
	if ops == 0 {
		return 0
	}
	return cpu / time.Duration(ops)
}
