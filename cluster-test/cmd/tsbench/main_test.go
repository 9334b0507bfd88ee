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
