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

// lastUsedSummary is what the lastUsedAt phases measured (issue 3, Speed).
type lastUsedSummary struct {
	onOff []lg.ModeSummary
	// onOffRounds are the on/off rounds, for the per-round ratios and the
	// CPU per authentication.
	onOffRounds []lg.RoundResult
	// onMember and offMember are the followers' process names.
	onMember, offMember string
	hot                 []hotSummary
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

// offCluster is the second cluster of the lastUsedAt phases, started with
// --last-used-interval 0 (tracking off), and what measures it.
type offCluster struct {
	c                *harness.Cluster
	pool             *lg.ConnPool
	leader, follower *harness.Member
	set              *lg.TokenSet
	// procs is the first cluster's processes and this one's (off-n1 ...).
	procs   *lg.ProcSet
	stopped bool
}

// stop closes the connections and stops the cluster; later calls do
// nothing.
func (o *offCluster) stop() {
	if o.stopped {
		return
	}
	o.stopped = true
	o.pool.Close()
	o.c.Stop()
}

// startOffCluster starts the tracking-off cluster beside the first, with
// the same member flags and as many tokens, and waits until its follower
// under test has applied them all.
func (b *bench) startOffCluster(ctx context.Context) (_ *offCluster, err error) {
	c, err := harness.New(filepath.Join(b.tmp, "bin"), filepath.Join(b.tmp, "data-tracking-off"),
		harness.Options{Size: 3, Extra: append(append([]string(nil), b.cfg.memberFlags...), "--last-used-interval", "0")})
	if err != nil {
		return nil, fmt.Errorf("prepare tracking-off cluster: %w", err)
	}
	o := &offCluster{c: c, pool: lg.NewConnPool(b.cfg.conns)}
	defer func() {
		if err != nil {
			o.stop()
		}
	}()
	if err := c.StartAll(); err != nil {
		return nil, fmt.Errorf("start tracking-off cluster: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitReady(sctx); err != nil {
		return nil, err
	}
	if o.leader, err = c.Leader(sctx); err != nil {
		return nil, err
	}
	o.follower = c.Followers(o.leader)[0]
	o.procs = &lg.ProcSet{Names: append([]string(nil), b.procs.Names...), PIDs: map[string]int{}}
	for k, v := range b.procs.PIDs {
		o.procs.PIDs[k] = v
	}
	for _, m := range c.Members {
		if pid, err := lg.FindMemberPID(m.DataDir); err == nil {
			o.procs.Names = append(o.procs.Names, "off-"+m.Name)
			o.procs.PIDs["off-"+m.Name] = pid
		}
	}
	tok, err := o.pool.Tokens(o.leader)
	if err != nil {
		return nil, err
	}
	if o.set, err = lg.CreateTokens(sctx, tok, o.leader.Name, b.cfg.tokens, b.cfg.writeConcurrency); err != nil {
		return nil, err
	}
	auth, err := o.pool.Auth(o.follower)
	if err != nil {
		return nil, err
	}
	// Make the tracking-off follower apply every create before bounded reads.
	if err := lg.CheckApplied(sctx, auth[0], o.set); err != nil {
		return nil, fmt.Errorf("tracking-off follower %s: %w", o.follower.Name, err)
	}
	return o, nil
}

// onOffPhase compares bounded Authenticate at a follower of the first
// cluster (tracking on) and of the tracking-off cluster: same clients, as
// many tokens in each, rounds alternating. It runs before the write rounds,
// so both clusters hold the same number of tokens.
func (b *bench) onOffPhase(ctx context.Context, o *offCluster, sum *lastUsedSummary) error {
	authOn, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	authOff, err := o.pool.Auth(o.follower)
	if err != nil {
		return err
	}
	sum.onMember, sum.offMember = b.follower.Name, "off-"+o.follower.Name
	rs := b.runVariants(ctx, o.procs, []variant{
		{trackingOn, sum.onMember, lg.AuthOp(authOn, b.set, lg.Bounded, b.follower.Name)},
		{trackingOff, sum.offMember, lg.AuthOp(authOff, o.set, lg.Bounded, o.follower.Name)},
	}, b.cfg.concurrency, b.cfg.onOffRounds, b.cfg.onOffDuration, "")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	for i := range rs {
		b.failed += rs[i].Failures()
	}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "lastUsedAt tracking on vs off: bounded Authenticate at a follower of each cluster (--last-used-interval 1s vs 0), %d clients over %d connections, %v per round, %d tokens in turn in each\n",
		b.cfg.concurrency, b.cfg.conns, b.cfg.onOffDuration, len(b.set.Bearers))
	lg.PrintRounds(b.out, "mode", "auth/s", rs, o.procs.Names)
	sum.onOffRounds = rs
	sum.onOff = lg.Summarize(rs, []string{trackingOn, trackingOff})
	lg.PrintMedians(b.out, "mode", "auth/s", sum.onOff)
	// CPU per authentication at the follower is the steadier measure on a
	// shared machine: throughput moves with whatever else runs.
	lg.PrintCPUPerOp(b.out, "authentication", rs, o.procs.Names, []string{trackingOn, trackingOff})
	fmt.Fprintf(b.out, "on/off auth/s per round: %s\n", lg.RatioSpread(lg.PairRatios(rs, trackingOn, trackingOff)))
	return nil
}

// hotPhase compares, on one hot token at each of -hot-clients, the batched
// register (Authenticate with tracking on) with the naive design: one
// replicated compare-and-swap per authentication through the tracking-off
// cluster's raft group (loadgen.NaiveCASOp).
func (b *bench) hotPhase(ctx context.Context, o *offCluster, sum *lastUsedSummary) error {
	authOn, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	authOff, err := o.pool.Auth(o.follower)
	if err != nil {
		return err
	}
	tokensOff, err := o.pool.Tokens(o.follower)
	if err != nil {
		return err
	}
	hotOn := &lg.TokenSet{Bearers: b.set.Bearers[:1], Users: b.set.Users[:1]}
	hotOff := &lg.TokenSet{Bearers: o.set.Bearers[:1], Users: o.set.Users[:1]}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "one hot token: batched register (Authenticate, tracking on) vs naive CAS (Authenticate + linearizable GetToken + UpdateToken with expected_update_revision, through the tracking-off cluster's raft group), both at a follower, %v per round\n", b.cfg.duration)
	fmt.Fprintf(b.out, "  a naive CAS that loses (ABORTED) is counted under wrong: its proxy would answer 401\n")
	var all []lg.RoundResult
	for _, c := range b.cfg.hotClients {
		tag := " x" + strconv.Itoa(c)
		rs := b.runVariants(ctx, o.procs, []variant{
			{batched, b.follower.Name, lg.AuthOp(authOn, hotOn, lg.Bounded, b.follower.Name)},
			{naiveCAS, "off-" + o.follower.Name, lg.NaiveCASOp(authOff, tokensOff, hotOff, o.follower.Name)},
		}, c, b.cfg.hotRounds, b.cfg.duration, tag)
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
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	lg.PrintRounds(b.out, "design", "auth/s", all, o.procs.Names)
	tw := newTable(b.out)
	fmt.Fprintln(tw, "median\tclients\tbatched auth/s\tp99\tnaive auth/s\tp99\tratio\tnaive conflicts\tnaive errors\tbatched failures\t")
	for _, h := range sum.hot {
		fmt.Fprintf(tw, "\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", h.clients, lg.FmtRate(h.batched.Rate), lg.FmtDur(h.batched.P99),
			lg.FmtRate(h.naive.Rate), lg.FmtDur(h.naive.P99), ratio(h.batched.Rate, h.naive.Rate), h.conflicts, h.errs, h.batchedFailures)
	}
	tw.Flush()
	return nil
}

// ratio formats a/b as "12.3x", or "inf" when b is zero.
func ratio(a, b float64) string {
	if b <= 0 {
		return "inf"
	}
	return fmt.Sprintf("%.1fx", a/b)
}
