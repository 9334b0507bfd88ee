package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ModeSummary is one mode's (or route's) figures over its rounds: the
// Median of each round's value, so one disturbed round does not move it.
type ModeSummary struct {
	Label    string
	Rate     float64
	P50, P99 time.Duration
	Rounds   int
	Failures int
}

func Summarize(rs []RoundResult, labels []string) []ModeSummary {
	var out []ModeSummary
	for _, l := range labels {
		s := ModeSummary{Label: l}
		var rates []float64
		var p50s, p99s []time.Duration
		for i := range rs {
			r := &rs[i]
			if r.Label != l {
				continue
			}
			s.Rounds++
			s.Failures += r.Failures()
			rates = append(rates, r.Rate())
			p50s = append(p50s, r.Pct(50))
			p99s = append(p99s, r.Pct(99))
		}
		s.Rate = Median(rates)
		s.P50 = Median(p50s)
		s.P99 = Median(p99s)
		out = append(out, s)
	}
	return out
}

// Median returns the middle value, the mean of the two middle values for
// an even count, or 0 for none.
func Median[T time.Duration | float64](vs []T) T {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// FmtDur prints a latency with three significant-ish digits in µs or ms.
func FmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
}

// FmtRate prints a rate with thousands separators.
func FmtRate(v float64) string {
	n := int64(v + 0.5)
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// PrintRounds prints one line per round. The cpu columns are each
// process's CPU use during the round in percent of one core, and busy is
// the whole machine's: together they show whether the machine, not the
// server, was the limit.
func PrintRounds(out io.Writer, kind, unit string, rs []RoundResult, procs []string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := []string{"round", kind, "member", unit, "p50", "p99", "ok", "wrong", "errors"}
	for _, p := range procs {
		hdr = append(hdr, "cpu "+p)
	}
	hdr = append(hdr, "machine busy")
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for i := range rs {
		r := &rs[i]
		row := []string{fmt.Sprint(r.Round), r.Label, r.Member, FmtRate(r.Rate()), FmtDur(r.Pct(50)), FmtDur(r.Pct(99)),
			fmt.Sprint(r.OK), fmt.Sprint(r.Wrong), fmt.Sprint(r.Errs)}
		for _, p := range procs {
			if d, ok := r.CPU[p]; ok {
				row = append(row, fmt.Sprintf("%.0f%%", 100*d.Seconds()/r.Elapsed.Seconds()))
			} else {
				row = append(row, "n/a")
			}
		}
		if r.Busy >= 0 {
			row = append(row, fmt.Sprintf("%.0f%%", 100*r.Busy))
		} else {
			row = append(row, "n/a")
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for i := range rs {
		if r := &rs[i]; r.Failures() > 0 {
			fmt.Fprintf(out, "  round %d %s: %d wrong, %d errors%s\n", r.Round, r.Label, r.Wrong, r.Errs, SampleText(r))
		}
	}
}

// PrintMedians prints each mode's medians over its rounds.
func PrintMedians(out io.Writer, kind, unit string, ss []ModeSummary) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "median\t%s\t%s\tp50\tp99\trounds\t\n", kind, unit)
	for _, s := range ss {
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%d\t\n", s.Label, FmtRate(s.Rate), FmtDur(s.P50), FmtDur(s.P99), s.Rounds)
	}
	tw.Flush()
}

// PrintCPUPerOp prints, per mode, the CPU time each process spent per
// successful request over all that mode's rounds: where the time goes.
func PrintCPUPerOp(out io.Writer, what string, rs []RoundResult, procs, labels []string) {
	for _, l := range labels {
		per, ops := CPUByProcess(rs, l)
		if ops == 0 || len(per) == 0 {
			continue
		}
		var parts []string
		for _, p := range procs {
			if d, ok := per[p]; ok {
				parts = append(parts, fmt.Sprintf("%s %s", p, FmtDur(d/time.Duration(ops))))
			}
		}
		fmt.Fprintf(out, "cpu per %s (%s): %s\n", what, l, strings.Join(parts, ", "))
	}
}

// CPUByProcess sums, over the rounds labelled label, each process's CPU
// time and the checked answers (ops) they served.
func CPUByProcess(rs []RoundResult, label string) (per map[string]time.Duration, ops int) {
	per = map[string]time.Duration{}
	for i := range rs {
		if rs[i].Label != label {
			continue
		}
		ops += rs[i].OK
		for p, d := range rs[i].CPU {
			per[p] += d
		}
	}
	return per, ops
}

// SampleText formats a round's failure messages for the report.
func SampleText(r *RoundResult) string {
	if len(r.Samples) == 0 {
		return ""
	}
	return " (e.g. " + strings.Join(r.Samples, "; ") + ")"
}

func Find(ss []ModeSummary, label string) ModeSummary {
	for _, s := range ss {
		if s.Label == label {
			return s
		}
	}
	return ModeSummary{}
}
