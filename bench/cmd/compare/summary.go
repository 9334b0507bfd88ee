package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
)

// Issue 9's goals.
const (
	readGoal     = 2.0  // tokenstore bounded / etcd serializable
	naiveGoal    = 20.0 // tokenstore batched / etcd naive
	writeGoal    = 1.0  // tokenstore creates / etcd puts
	rssGoalMiB   = 1024
	restartGoalS = 10
	catchUpGoalS = 30
)

func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func ratioOf(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// printSummary prints every ratio with the goal it is held to.
func printSummary(out io.Writer, r *results) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "summary (medians over rounds)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if len(r.Reads) == 4 {
		tb, es, tl, el := lg.Find(r.Reads, "tokenstore bounded"), lg.Find(r.Reads, "etcd serializable"),
			lg.Find(r.Reads, "tokenstore linearizable"), lg.Find(r.Reads, "etcd linearizable")
		q := ratioOf(tb.Rate, es.Rate)
		fmt.Fprintf(tw, "  (1) tokenstore bounded vs etcd serializable Get\t%s vs %s auth/s\t%.2fx\tgoal >= %.0fx: %s\n",
			lg.FmtRate(tb.Rate), lg.FmtRate(es.Rate), q, readGoal, verdict(q >= readGoal))
		fmt.Fprintf(tw, "      tokenstore linearizable vs etcd linearizable Get\t%s vs %s auth/s\t%.2fx\t\n",
			lg.FmtRate(tl.Rate), lg.FmtRate(el.Rate), ratioOf(tl.Rate, el.Rate))
		fmt.Fprintf(tw, "      tokenstore bounded vs etcd linearizable Get\t%s vs %s auth/s\t%.2fx\t\n",
			lg.FmtRate(tb.Rate), lg.FmtRate(el.Rate), ratioOf(tb.Rate, el.Rate))
		if tc, ec := r.ReadCPU["tokenstore bounded"], r.ReadCPU["etcd serializable"]; tc.Servers > 0 && ec.Servers > 0 {
			fmt.Fprintf(tw, "      cpu per read, bounded vs serializable: servers / load generator\t%.0f / %.0fµs vs %.0f / %.0fµs\tservers %.2fx less, all %.2fx less\t\n",
				tc.Servers, tc.Generator, ec.Servers, ec.Generator, ec.Servers/tc.Servers, (ec.Servers+ec.Generator)/(tc.Servers+tc.Generator))
		}
	}
	for _, h := range r.Hot {
		q := ratioOf(h.Tokenstore.Rate, h.Etcd.Rate)
		fmt.Fprintf(tw, "  (2) hot token, %d clients: tokenstore vs naive etcd\t%s vs %s auth/s\t%.1fx, p99 %.2fms vs %.2fms, etcd conflicts %d errors %d, tokenstore failures %d\tgoal >= %.0fx, 0 failed: %s\n",
			h.Clients, lg.FmtRate(h.Tokenstore.Rate), lg.FmtRate(h.Etcd.Rate), q, h.Tokenstore.P99, h.Etcd.P99, h.Conflicts, h.EtcdErrors, h.TokenstoreFails,
			naiveGoal, verdict((h.Etcd.Rate == 0 || q >= naiveGoal) && h.TokenstoreFails == 0))
	}
	for _, w := range r.Writes {
		q := ratioOf(w.Tokenstore.Rate, w.Etcd.Rate)
		fmt.Fprintf(tw, "  (3) writes, %d clients: tokenstore create vs etcd put\t%s vs %s /s\t%.2fx, p99 %.2fms vs %.2fms\tgoal >= %.0fx: %s\n",
			w.Clients, lg.FmtRate(w.Tokenstore.Rate), lg.FmtRate(w.Etcd.Rate), q, w.Tokenstore.P99, w.Etcd.P99, writeGoal, verdict(q >= writeGoal))
	}
	for _, f := range r.Failover {
		line := fmt.Sprintf("  (4) failover round %d, %s: leader %s killed, next leader %s after %.0fms\t", f.Round, f.System, f.Killed, f.Leader, f.Elected)
		for _, m := range f.Modes {
			line += fmt.Sprintf("%s %d failed of %d; ", m.Mode, m.Failed, m.OK+m.Failed)
		}
		if f.System == "tokenstore" {
			ok := len(f.Modes) > 0 && f.Modes[0].Failed == 0
			line += fmt.Sprintf("\tgoal 0 failed (bounded, the default): %s", verdict(ok))
		}
		fmt.Fprintln(tw, line)
	}
	for _, s := range r.Scale {
		var peak int64
		for _, v := range s.RSSMiB {
			peak = max(peak, v)
		}
		line := fmt.Sprintf("  (5) %s, %d tokens: RSS <= %d MiB per member, restart %.2fs, catch-up %.2fs\t", s.System, s.Tokens, peak, s.Restart, s.CatchUp)
		if s.System == "tokenstore" {
			line += fmt.Sprintf("goal <= 1 GiB: %s, <= 10 s: %s, <= 30 s: %s", verdict(peak <= rssGoalMiB), verdict(s.Restart <= restartGoalS), verdict(s.CatchUp <= catchUpGoalS))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintf(out, "  checks: %d tokenstore answers failed a check or errored (outside failover, where failures are the figure): %s\n", r.Failed, verdict(r.Failed == 0))
}
