package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// Labels of the lastUsedAt phase.
const (
	trackingOn  = "tracking on"
	trackingOff = "tracking off"
	batched     = "batched register"
	naiveCAS    = "naive CAS"
)

// lastUsedSummary is what the lastUsedAt phase measured (issue 3, Speed).
type lastUsedSummary struct {
	onOff []lg.ModeSummary
	hot   []hotSummary
}

// hotSummary is one client count of the hot-token comparison.
type hotSummary struct {
	clients        int
	batched, naive lg.ModeSummary
	// conflicts and errors of the naive design over all its rounds: each
	// is an authentication its proxy would have failed.
	conflicts, errs int
	// batchedFailures must be 0.
	batchedFailures int
}

// lastUsedPhase measures the cost of lastUsedAt tracking. It starts a
// second cluster with --last-used-interval 0 beside the first and
//
//   - compares Authenticate at a follower with tracking on (the first
//     cluster) and off (the second), same clients, rounds alternating;
//   - compares, on one hot token at 1, 64 and 1,000 clients, the batched
//     register (Authenticate with tracking on) with the naive design: one
//     replicated compare-and-swap per authentication through the second
//     cluster's raft group (loadgen.NaiveCASOp).
func (b *bench) lastUsedPhase(ctx context.Context) (*lastUsedSummary, error) {
	off, err := harness.New(filepath.Join(b.tmp, "bin"), filepath.Join(b.tmp, "data-tracking-off"),
		harness.Options{Size: 3, Extra: append(append([]string(nil), b.cfg.memberFlags...), "--last-used-interval", "0")})
	if err != nil {
		return nil, fmt.Errorf("prepare tracking-off cluster: %w", err)
	}
	defer off.Stop()
	if err := off.StartAll(); err != nil {
		return nil, fmt.Errorf("start tracking-off cluster: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := off.WaitReady(sctx); err != nil {
		return nil, err
	}
	offLeader, err := off.Leader(sctx)
	if err != nil {
		return nil, err
	}
	offFollower := off.Followers(offLeader)[0]
	pool := lg.NewConnPool(b.cfg.conns)
	defer pool.Close()
	procs := &lg.ProcSet{Names: append([]string(nil), b.procs.Names...), PIDs: map[string]int{}}
	for k, v := range b.procs.PIDs {
		procs.PIDs[k] = v
	}
	for _, m := range off.Members {
		if pid, err := lg.FindMemberPID(m.DataDir); err == nil {
			procs.Names = append(procs.Names, "off-"+m.Name)
			procs.PIDs["off-"+m.Name] = pid
		}
	}
	tokOff, err := pool.Tokens(offLeader)
	if err != nil {
		return nil, err
	}
	setOff, err := lg.CreateTokens(sctx, tokOff, offLeader.Name, b.cfg.tokens, b.cfg.writeConcurrency)
	if err != nil {
		return nil, err
	}
	authOn, err := b.pool.Auth(b.follower)
	if err != nil {
		return nil, err
	}
	authOff, err := pool.Auth(offFollower)
	if err != nil {
		return nil, err
	}
	tokensOff, err := pool.Tokens(offFollower)
	if err != nil {
		return nil, err
	}
	// Make the tracking-off follower apply every create before bounded reads.
	if err := lg.CheckApplied(sctx, authOff[0], setOff); err != nil {
		return nil, fmt.Errorf("tracking-off follower %s: %w", offFollower.Name, err)
	}

	type variant struct {
		label, member string
		do            lg.Op
	}
	run := func(vs []variant, clients, rounds int, tag string) []lg.RoundResult {
		var out []lg.RoundResult
		for r := 1; r <= rounds && ctx.Err() == nil; r++ {
			for _, v := range lg.ABBA(vs, r) {
				before := procs.Snap()
				res := lg.RunRound(ctx, clients, b.cfg.duration, v.do)
				procs.Fill(&res, before, procs.Snap())
				res.Round, res.Label, res.Member = r, v.label+tag, v.member
				out = append(out, res)
			}
		}
		return out
	}

	sum := &lastUsedSummary{}
	onOff := run([]variant{
		{trackingOn, b.follower.Name, lg.AuthOp(authOn, b.set, lg.Bounded, b.follower.Name)},
		{trackingOff, "off-" + offFollower.Name, lg.AuthOp(authOff, setOff, lg.Bounded, offFollower.Name)},
	}, b.cfg.concurrency, b.cfg.rounds, "")
	for i := range onOff {
		b.failed += onOff[i].Failures()
	}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "lastUsedAt tracking on vs off: bounded Authenticate at a follower of each cluster (--last-used-interval 1s vs 0), %d clients over %d connections, %v per round, %d tokens in turn\n",
		b.cfg.concurrency, b.cfg.conns, b.cfg.duration, len(b.set.Bearers))
	lg.PrintRounds(b.out, "mode", "auth/s", onOff, procs.Names)
	sum.onOff = lg.Summarize(onOff, []string{trackingOn, trackingOff})
	lg.PrintMedians(b.out, "mode", "auth/s", sum.onOff)
	// CPU per authentication at the follower is the steadier measure on a
	// shared machine: throughput moves with whatever else runs.
	lg.PrintCPUPerOp(b.out, "authentication", onOff, procs.Names, []string{trackingOn, trackingOff})

	hotOn := &lg.TokenSet{Bearers: b.set.Bearers[:1], Users: b.set.Users[:1]}
	hotOff := &lg.TokenSet{Bearers: setOff.Bearers[:1], Users: setOff.Users[:1]}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "one hot token: batched register (Authenticate, tracking on) vs naive CAS (Authenticate + linearizable GetToken + UpdateToken with expected_update_revision, through the tracking-off cluster's raft group), both at a follower, %v per round\n", b.cfg.duration)
	fmt.Fprintf(b.out, "  a naive CAS that loses (ABORTED) is counted under wrong: its proxy would answer 401\n")
	var all []lg.RoundResult
	for _, c := range b.cfg.hotClients {
		tag := " x" + strconv.Itoa(c)
		rs := run([]variant{
			{batched, b.follower.Name, lg.AuthOp(authOn, hotOn, lg.Bounded, b.follower.Name)},
			{naiveCAS, "off-" + offFollower.Name, lg.NaiveCASOp(authOff, tokensOff, hotOff, offFollower.Name)},
		}, c, b.cfg.hotRounds, tag)
		all = append(all, rs...)
		h := hotSummary{clients: c}
		ss := lg.Summarize(rs, []string{batched + tag, naiveCAS + tag})
		h.batched, h.naive = ss[0], ss[1]
		for i := range rs {
			if strings.HasPrefix(rs[i].Label, naiveCAS) {
				h.conflicts += rs[i].Wrong
				h.errs += rs[i].Errs
			} else {
				h.batchedFailures += rs[i].Failures()
			}
		}
		b.failed += h.batchedFailures
		sum.hot = append(sum.hot, h)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	lg.PrintRounds(b.out, "design", "auth/s", all, procs.Names)
	tw := newTable(b.out)
	fmt.Fprintln(tw, "median\tclients\tbatched auth/s\tp99\tnaive auth/s\tp99\tratio\tnaive conflicts\tnaive errors\tbatched failures\t")
	for _, h := range sum.hot {
		fmt.Fprintf(tw, "\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", h.clients, lg.FmtRate(h.batched.Rate), lg.FmtDur(h.batched.P99),
			lg.FmtRate(h.naive.Rate), lg.FmtDur(h.naive.P99), ratio(h.batched.Rate, h.naive.Rate), h.conflicts, h.errs, h.batchedFailures)
	}
	tw.Flush()
	return sum, nil
}

// ratio formats a/b as "12.3x", or "inf" when b is zero.
func ratio(a, b float64) string {
	if b <= 0 {
		return "inf"
	}
	return fmt.Sprintf("%.1fx", a/b)
}
