package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// modeSummary is one mode's (or route's) figures over its rounds: the
// median of each round's value, so one disturbed round does not move it.
type modeSummary struct {
	label    string
	rate     float64
	p50, p99 time.Duration
	rounds   int
	failures int
}

func summarize(rs []roundResult, labels []string) []modeSummary {
	var out []modeSummary
	for _, l := range labels {
		s := modeSummary{label: l}
		var rates []float64
		var p50s, p99s []time.Duration
		for i := range rs {
			r := &rs[i]
			if r.label != l {
				continue
			}
			s.rounds++
			s.failures += r.failures()
			rates = append(rates, r.rate())
			p50s = append(p50s, r.pct(50))
			p99s = append(p99s, r.pct(99))
		}
		s.rate = median(rates)
		s.p50 = median(p50s)
		s.p99 = median(p99s)
		out = append(out, s)
	}
	return out
}

// median returns the middle value, the mean of the two middle values for
// an even count, or 0 for none.
func median[T time.Duration | float64](vs []T) T {
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

// fmtDur prints a latency with three significant-ish digits in µs or ms.
func fmtDur(d time.Duration) string {
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

// fmtRate prints a rate with thousands separators.
func fmtRate(v float64) string {
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

// printRounds prints one line per round. The cpu columns are each
// process's CPU use during the round in percent of one core, and busy is
// the whole machine's: together they show whether the machine, not the
// server, was the limit.
func printRounds(out io.Writer, kind, unit string, rs []roundResult, procs []string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := []string{"round", kind, "member", unit, "p50", "p99", "ok", "wrong", "errors"}
	for _, p := range procs {
		hdr = append(hdr, "cpu "+p)
	}
	hdr = append(hdr, "machine busy")
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for i := range rs {
		r := &rs[i]
		row := []string{fmt.Sprint(r.round), r.label, r.member, fmtRate(r.rate()), fmtDur(r.pct(50)), fmtDur(r.pct(99)),
			fmt.Sprint(r.ok), fmt.Sprint(r.wrong), fmt.Sprint(r.errs)}
		for _, p := range procs {
			if d, ok := r.cpu[p]; ok {
				row = append(row, fmt.Sprintf("%.0f%%", 100*d.Seconds()/r.elapsed.Seconds()))
			} else {
				row = append(row, "n/a")
			}
		}
		if r.busy >= 0 {
			row = append(row, fmt.Sprintf("%.0f%%", 100*r.busy))
		} else {
			row = append(row, "n/a")
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for i := range rs {
		if r := &rs[i]; r.failures() > 0 {
			fmt.Fprintf(out, "  round %d %s: %d wrong, %d errors%s\n", r.round, r.label, r.wrong, r.errs, sampleText(r))
		}
	}
}

// printMedians prints each mode's medians over its rounds.
func printMedians(out io.Writer, kind, unit string, ss []modeSummary) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "median\t%s\t%s\tp50\tp99\trounds\t\n", kind, unit)
	for _, s := range ss {
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%d\t\n", s.label, fmtRate(s.rate), fmtDur(s.p50), fmtDur(s.p99), s.rounds)
	}
	tw.Flush()
}

// printCPUPerOp prints, per mode, the CPU time each process spent per
// successful request over all that mode's rounds: where the time goes.
func printCPUPerOp(out io.Writer, what string, rs []roundResult, procs, labels []string) {
	for _, l := range labels {
		ops := 0
		per := map[string]time.Duration{}
		for i := range rs {
			if rs[i].label != l {
				continue
			}
			ops += rs[i].ok
			for p, d := range rs[i].cpu {
				per[p] += d
			}
		}
		if ops == 0 || len(per) == 0 {
			continue
		}
		var parts []string
		for _, p := range procs {
			if d, ok := per[p]; ok {
				parts = append(parts, fmt.Sprintf("%s %s", p, fmtDur(d/time.Duration(ops))))
			}
		}
		fmt.Fprintf(out, "cpu per %s (%s): %s\n", what, l, strings.Join(parts, ", "))
	}
}

// sampleText formats a round's failure messages for the report.
func sampleText(r *roundResult) string {
	if len(r.samples) == 0 {
		return ""
	}
	return " (e.g. " + strings.Join(r.samples, "; ") + ")"
}

func find(ss []modeSummary, label string) modeSummary {
	for _, s := range ss {
		if s.label == label {
			return s
		}
	}
	return modeSummary{}
}

// printSummary prints one line per metric and the verdict of the checks.
func printSummary(out io.Writer, follower string, auth, write []modeSummary, failed int) {
	b, l := find(auth, bounded.name), find(auth, linearizable.name)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "summary (medians over rounds)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	line := func(what string, s modeSummary, unit, note string) {
		fmt.Fprintf(tw, "  %s\t%s %s\tp50 %s\tp99 %s", what, fmtRate(s.rate), unit, fmtDur(s.p50), fmtDur(s.p99))
		if note != "" {
			// Only a terminated cell is padded: without a note the line
			// ends at p99, with no trailing blanks.
			fmt.Fprintf(tw, "\t%s", note)
		}
		fmt.Fprintln(tw)
	}
	verdict := "target >= " + fmtRate(authTarget) + "/s: met"
	if b.rate < authTarget {
		verdict = fmt.Sprintf("target >= %s/s: MISSED (%.0f%% of it)", fmtRate(authTarget), 100*b.rate/authTarget)
	}
	line("authenticate bounded at follower "+follower, b, "auth/s", verdict)
	ratio := ""
	if l.rate > 0 {
		ratio = fmt.Sprintf("bounded/linearizable = %.2fx", b.rate/l.rate)
	}
	line("authenticate linearizable at follower "+follower, l, "auth/s", ratio)
	for _, s := range write {
		line("create token "+s.label, s, "creates/s", "")
	}
	tw.Flush()
	result := "PASS"
	if failed > 0 {
		result = "FAIL"
	}
	fmt.Fprintf(out, "  checks: %d wrong answers or RPC errors: %s\n", failed, result)
}
