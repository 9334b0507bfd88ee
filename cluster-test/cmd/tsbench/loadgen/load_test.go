package loadgen

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPercentileNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.5, time.Millisecond}} {
		if got := Percentile(lat, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
}

// TestRunRoundCountsEveryOutcome checks that wrong answers and RPC errors
// are counted, not timed, and that the clients stop when the round ends.
func TestRunRoundCountsEveryOutcome(t *testing.T) {
	do := func(_ context.Context, _, seq int) error {
		time.Sleep(time.Millisecond)
		switch seq % 3 {
		case 1:
			return Wrongf("token refused")
		case 2:
			return status.Error(codes.Unavailable, "not caught up")
		}
		return nil
	}
	start := time.Now()
	r := RunRound(context.Background(), 4, 50*time.Millisecond, do)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("round of 50ms took %v", took)
	}
	if r.OK == 0 || r.Wrong == 0 || r.Errs == 0 {
		t.Fatalf("ok %d wrong %d errs %d: want all non-zero", r.OK, r.Wrong, r.Errs)
	}
	if len(r.Lat) != r.OK {
		t.Fatalf("%d latencies for %d ok answers", len(r.Lat), r.OK)
	}
	if r.Failures() != r.Wrong+r.Errs {
		t.Fatalf("failures %d, want %d", r.Failures(), r.Wrong+r.Errs)
	}
	if len(r.Samples) != 2 {
		t.Fatalf("samples %q, want one per distinct failure", r.Samples)
	}
}

func TestFmtRate(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 37273.4: "37,273", 1234567: "1,234,567"} {
		if got := FmtRate(in); got != want {
			t.Errorf("FmtRate(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRotateRunsEveryItemInEveryPosition(t *testing.T) {
	in := []string{"a", "b", "c", "d"}
	seen := map[string]map[int]bool{}
	for r := 1; r <= len(in); r++ {
		for pos, v := range Rotate(in, r) {
			if seen[v] == nil {
				seen[v] = map[int]bool{}
			}
			seen[v][pos] = true
		}
	}
	for _, v := range in {
		if len(seen[v]) != len(in) {
			t.Errorf("%s ran in positions %v, want all %d", v, seen[v], len(in))
		}
	}
	if got := Rotate(in, 1); got[0] != "a" {
		t.Errorf("round 1 starts with %s", got[0])
	}
}

func TestPairRatiosPairsRoundsNotPositions(t *testing.T) {
	mk := func(round int, label string, ok int) RoundResult {
		return RoundResult{Round: round, Label: label, OK: ok, Elapsed: time.Second}
	}
	// ABBA order: round 2 runs b first.
	rs := []RoundResult{mk(1, "a", 90), mk(1, "b", 100), mk(2, "b", 50), mk(2, "a", 60), mk(3, "a", 10)}
	got := PairRatios(rs, "a", "b")
	if len(got) != 2 || got[0] != 0.9 || got[1] != 1.2 {
		t.Fatalf("ratios %v, want [0.9 1.2] (round 3 has no b)", got)
	}
	if s := RatioSpread(got); s != "median 1.050 (0.900 to 1.200 over 2 rounds)" {
		t.Errorf("spread %q", s)
	}
}
