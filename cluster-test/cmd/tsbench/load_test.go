package main

import (
	"context"
	"strings"
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
		if got := percentile(lat, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
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
			return wrongf("token refused")
		case 2:
			return status.Error(codes.Unavailable, "not caught up")
		}
		return nil
	}
	start := time.Now()
	r := runRound(context.Background(), 4, 50*time.Millisecond, do)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("round of 50ms took %v", took)
	}
	if r.ok == 0 || r.wrong == 0 || r.errs == 0 {
		t.Fatalf("ok %d wrong %d errs %d: want all non-zero", r.ok, r.wrong, r.errs)
	}
	if len(r.lat) != r.ok {
		t.Fatalf("%d latencies for %d ok answers", len(r.lat), r.ok)
	}
	if r.failures() != r.wrong+r.errs {
		t.Fatalf("failures %d, want %d", r.failures(), r.wrong+r.errs)
	}
	if len(r.samples) != 2 {
		t.Fatalf("samples %q, want one per distinct failure", r.samples)
	}
}

func TestABBA(t *testing.T) {
	in := []string{"a", "b"}
	if got := abba(in, 1); got[0] != "a" {
		t.Errorf("round 1: %v", got)
	}
	if got := abba(in, 2); got[0] != "b" {
		t.Errorf("round 2: %v", got)
	}
}

func TestFmtRate(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 37273.4: "37,273", 1234567: "1,234,567"} {
		if got := fmtRate(in); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSummaryHasNoTrailingBlanks(t *testing.T) {
	var b strings.Builder
	auth := []modeSummary{{label: "bounded", rate: 30000, p50: time.Millisecond, p99: 5 * time.Millisecond}, {label: "linearizable", rate: 15000, p50: 2 * time.Millisecond, p99: 9 * time.Millisecond}}
	write := []modeSummary{{label: "via leader", rate: 1500, p50: 9 * time.Millisecond, p99: 20 * time.Millisecond}}
	printSummary(&b, "n1", auth, write, 0)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.TrimRight(l, " ") != l {
			t.Errorf("trailing blanks in %q", l)
		}
	}
	if !strings.Contains(b.String(), "target >= 20,000/s: met") || !strings.Contains(b.String(), "2.00x") {
		t.Errorf("summary misses the verdict or the ratio:\n%s", b.String())
	}
}
