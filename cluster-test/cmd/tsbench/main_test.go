package main

import (
	"strings"
	"testing"
	"time"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
)

func TestABBA(t *testing.T) {
	in := []string{"a", "b"}
	if got := lg.ABBA(in, 1); got[0] != "a" {
		t.Errorf("round 1: %v", got)
	}
	if got := lg.ABBA(in, 2); got[0] != "b" {
		t.Errorf("round 2: %v", got)
	}
}

func TestSummaryHasNoTrailingBlanks(t *testing.T) {
	var b strings.Builder
	auth := []lg.ModeSummary{{Label: "bounded", Rate: 30000, P50: time.Millisecond, P99: 5 * time.Millisecond}, {Label: "linearizable", Rate: 15000, P50: 2 * time.Millisecond, P99: 9 * time.Millisecond}}
	write := []lg.ModeSummary{{Label: "via leader", Rate: 1500, P50: 9 * time.Millisecond, P99: 20 * time.Millisecond}}
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

// pairedRounds makes one round per rate, labels alternating a, b from round 1.
func pairedRounds(a, b string, rates ...int) []lg.RoundResult {
	var rs []lg.RoundResult
	for i, r := range rates {
		label := a
		if i%2 == 1 {
			label = b
		}
		rs = append(rs, lg.RoundResult{Round: i/2 + 1, Label: label, OK: r, Elapsed: time.Second})
	}
	return rs
}

func TestLastUsedVerdictUsesPerRoundRatios(t *testing.T) {
	// Medians 960 vs 1000 would pass; every round's own ratio is 0.8.
	rs := pairedRounds(trackingOn, trackingOff, 800, 1000, 960, 1200, 1200, 1500)
	s := &lastUsedSummary{onOffRounds: rs, onOff: lg.Summarize(rs, []string{trackingOn, trackingOff})}
	var b strings.Builder
	printLastUsedSummary(&b, s)
	if !strings.Contains(b.String(), "within 5%: MISSED") || !strings.Contains(b.String(), "median 0.800") {
		t.Errorf("want the per-round ratio 0.8 and MISSED:\n%s", b.String())
	}
	rs = pairedRounds(trackingOn, trackingOff, 980, 1000, 1470, 1500)
	s = &lastUsedSummary{onOffRounds: rs, onOff: lg.Summarize(rs, []string{trackingOn, trackingOff})}
	b.Reset()
	printLastUsedSummary(&b, s)
	if !strings.Contains(b.String(), "within 5%: met") {
		t.Errorf("on/off 0.98 in every round should meet the goal:\n%s", b.String())
	}
}

func TestImportedVerdict(t *testing.T) {
	for _, c := range []struct {
		scrypt, native int
		want           string
	}{{400, 1000, "within 2x: MISSED"}, {600, 1000, "within 2x: met"}} {
		var b strings.Builder
		printSpeedSummary(&b, "n2", &speedSummary{imported: pairedRounds(scryptTokens, nativeTokens, c.scrypt, c.native), importedTokens: 10})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("scrypt %d vs native %d: want %q in\n%s", c.scrypt, c.native, c.want, b.String())
		}
	}
}
