package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/server/rancher"
)

// Labels of the webhook and imported-token phases.
const (
	grpcAuthenticate = "gRPC Authenticate"
	tokenReview      = "TokenReview v1 HTTP"
	nativeTokens     = "native"
	scryptTokens     = "imported scrypt"
	grpcAuthorize    = "gRPC Authorize"
	accessReview     = "SubjectAccessReview v1 HTTP"
)

// importedTarget is issue 5's bound: an imported scrypt token's repeated
// authentications/s within 2x of a native token's.
const importedTarget = 0.5

// speedSummary is what the webhook phases measured (issues 5 and 7),
// each comparison with its rounds for the per-round ratios.
type speedSummary struct {
	review, imported, access []lg.RoundResult
	importedTokens           int
	rbacObjects              string
	allowedShare             float64
}

// tokenReviewPhase compares TokenReview v1 over HTTP with keep-alive with
// gRPC Authenticate at the follower (issue 5): the same tokens, the same
// number of closed-loop clients (one keep-alive connection each over
// HTTP, -conns connections for gRPC), rounds alternating.
func (b *bench) tokenReviewPhase(ctx context.Context, sum *speedSummary) error {
	auth, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	web := lg.KeepAliveClient(b.c.HTTPClient(), b.cfg.concurrency)
	defer web.CloseIdleConnections()
	review, err := lg.TokenReviewOp(web, b.follower.HTTPURL(lg.TokenReviewPath), b.set, b.follower.Name)
	if err != nil {
		return err
	}
	rs := b.runVariants(ctx, b.procs, []variant{
		{tokenReview, b.follower.Name, review},
		{grpcAuthenticate, b.follower.Name, lg.AuthOp(auth, b.set, lg.Bounded, b.follower.Name)},
	}, b.cfg.concurrency, b.cfg.rounds, b.cfg.duration, "")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	b.countFailures(rs)
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "TokenReview v1 over HTTP keep-alive vs gRPC Authenticate (bounded) at follower %s: %d clients (%d keep-alive HTTP connections, %d gRPC connections), %v per round, %d tokens in turn\n",
		b.follower.Name, b.cfg.concurrency, b.cfg.concurrency, b.cfg.conns, b.cfg.duration, len(b.set.Bearers))
	b.printComparison(rs, "interface", "requests/s", tokenReview, grpcAuthenticate, "review")
	sum.review = rs
	return nil
}

// importedPhase compares repeated authentications of Rancher-imported
// scrypt ($1) tokens with native tokens at the follower (issue 5): as many
// tokens of each, imported through ImportTokens (tokenctl token import's
// call) and used once at the follower before the rounds, so the rounds
// measure repeated use; gRPC Authenticate, rounds alternating.
func (b *bench) importedPhase(ctx context.Context, sum *speedSummary) error {
	n := min(b.cfg.importedTokens, len(b.set.Bearers))
	tok, err := b.pool.Tokens(b.leader)
	if err != nil {
		return err
	}
	auth, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nsetup    hashing %d Rancher scrypt ($1, N=2^15) tokens and importing them via %s ... ", n, b.leader.Name)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	imported, err := lg.ImportRancherTokens(sctx, tok[0], b.leader.Name, n, rancher.FormatScrypt, "kubeconfig-u-bench")
	if err != nil {
		fmt.Fprintln(b.out)
		return err
	}
	fmt.Fprintf(b.out, "done in %v\n", time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(b.out, "setup    first use of each at %s (one scrypt each) ... ", b.follower.Name)
	t0 = time.Now()
	if err := lg.FirstUse(sctx, auth[0], imported); err != nil {
		fmt.Fprintln(b.out)
		return err
	}
	fmt.Fprintf(b.out, "done in %v (%v per token)\n", time.Since(t0).Round(time.Millisecond), (time.Since(t0) / time.Duration(n)).Round(time.Microsecond))
	native := &lg.TokenSet{Bearers: b.set.Bearers[:n], Users: b.set.Users[:n]}
	rs := b.runVariants(ctx, b.procs, []variant{
		{scryptTokens, b.follower.Name, lg.AuthOp(auth, imported, lg.Bounded, b.follower.Name)},
		{nativeTokens, b.follower.Name, lg.AuthOp(auth, native, lg.Bounded, b.follower.Name)},
	}, b.cfg.concurrency, b.cfg.rounds, b.cfg.duration, "")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	b.countFailures(rs)
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "Imported Rancher scrypt tokens vs native tokens, repeated use: gRPC Authenticate (bounded) at follower %s, %d clients over %d connections, %v per round, %d tokens of each in turn\n",
		b.follower.Name, b.cfg.concurrency, b.cfg.conns, b.cfg.duration, n)
	b.printComparison(rs, "tokens", "auth/s", scryptTokens, nativeTokens, "authentication")
	sum.imported, sum.importedTokens = rs, n
	return nil
}

// accessReviewPhase loads a generated policy of -rbac-roles ClusterRoles
// and -rbac-bindings bindings through ApplyRBAC and compares
// SubjectAccessReview v1 over HTTP keep-alive with gRPC Authorize at the
// follower (issue 7), every answer checked against the decision the
// policy's model expects.
func (b *bench) accessReviewPhase(ctx context.Context, sum *speedSummary) error {
	p := lg.NewRBACPolicy(b.cfg.rbacRoles, b.cfg.rbacBindings, 4096, 1)
	sum.allowedShare = p.AllowedShare()
	sum.rbacObjects = fmt.Sprintf("%s bindings, %s roles", lg.FmtRate(float64(b.cfg.rbacBindings)), lg.FmtRate(float64(b.cfg.rbacRoles)))
	fmt.Fprintf(b.out, "\nsetup    applying %s via %s ... ", sum.rbacObjects, b.leader.Name)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rev, err := lg.ApplyRBACPolicy(sctx, tokenstorev1.NewRBACServiceClient(b.leader.Conn()), p, 1000)
	if err != nil {
		fmt.Fprintln(b.out)
		return err
	}
	auth, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	// One linearizable Authorize makes the follower apply the whole policy
	// before the bounded rounds.
	r, err := auth[0].Authorize(sctx, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: "bench-user-0"},
		ResourceAttributes: &tokenstorev1.ResourceAttributes{Verb: "get", Resource: "pods"}, Consistency: lg.Linearizable.C})
	if err != nil {
		fmt.Fprintln(b.out)
		return fmt.Errorf("linearizable Authorize at %s: %w", b.follower.Name, err)
	}
	if r.GetRbacRevision() != rev {
		fmt.Fprintln(b.out)
		return fmt.Errorf("follower %s answers from RBAC revision %d after a linearizable read, want %d", b.follower.Name, r.GetRbacRevision(), rev)
	}
	fmt.Fprintf(b.out, "done in %v (RBAC revision %d); %.0f%% of the %d questions are allowed\n", time.Since(t0).Round(time.Millisecond), rev, 100*sum.allowedShare, len(p.Questions))
	web := lg.KeepAliveClient(b.c.HTTPClient(), b.cfg.concurrency)
	defer web.CloseIdleConnections()
	sar, err := lg.SubjectAccessReviewOp(web, b.follower.HTTPURL(lg.SubjectAccessReviewPath), p, b.follower.Name)
	if err != nil {
		return err
	}
	rs := b.runVariants(ctx, b.procs, []variant{
		{accessReview, b.follower.Name, sar},
		{grpcAuthorize, b.follower.Name, lg.AuthorizeOp(auth, p, b.follower.Name)},
	}, b.cfg.concurrency, b.cfg.rounds, b.cfg.duration, "")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	b.countFailures(rs)
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "SubjectAccessReview v1 over HTTP keep-alive vs gRPC Authorize (bounded) at follower %s, %s: %d clients (%d keep-alive HTTP connections, %d gRPC connections), %v per round, %d questions in turn, every decision checked\n",
		b.follower.Name, sum.rbacObjects, b.cfg.concurrency, b.cfg.concurrency, b.cfg.conns, b.cfg.duration, len(p.Questions))
	b.printComparison(rs, "interface", "requests/s", accessReview, grpcAuthorize, "decision")
	sum.access = rs
	return nil
}

// countFailures adds the rounds' wrong answers and errors to the run's.
func (b *bench) countFailures(rs []lg.RoundResult) {
	for i := range rs {
		b.failed += rs[i].Failures()
	}
}

// printComparison prints the rounds, medians, CPU per request and the
// per-round ratio of a to b.
func (b *bench) printComparison(rs []lg.RoundResult, kind, unit, a, c, what string) {
	lg.PrintRounds(b.out, kind, unit, rs, b.procs.Names)
	lg.PrintMedians(b.out, kind, unit, lg.Summarize(rs, []string{a, c}))
	lg.PrintCPUPerOp(b.out, what, rs, b.procs.Names, []string{a, c})
	fmt.Fprintf(b.out, "%s / %s per round: %s\n", a, c, lg.RatioSpread(lg.PairRatios(rs, a, c)))
}

// printSpeedSummary gives issues 5 and 7's figures with their verdicts;
// nil (phases skipped) prints nothing.
func printSpeedSummary(out io.Writer, follower string, s *speedSummary) {
	if s == nil {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if s.review != nil {
		r := lg.Find(lg.Summarize(s.review, []string{tokenReview}), tokenReview)
		fmt.Fprintf(tw, "  TokenReview v1, HTTP keep-alive, at follower %s\t%s req/s, p50 %s, p99 %s\tvs gRPC Authenticate: %s\treported (no target)\n",
			follower, lg.FmtRate(r.Rate), lg.FmtDur(r.P50), lg.FmtDur(r.P99), lg.RatioSpread(lg.PairRatios(s.review, tokenReview, grpcAuthenticate)))
	}
	if s.imported != nil {
		ss := lg.Summarize(s.imported, []string{scryptTokens, nativeTokens})
		ratios := lg.PairRatios(s.imported, scryptTokens, nativeTokens)
		verdict := "met"
		if lg.Median(ratios) < importedTarget {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  imported scrypt vs native tokens (%d each) at follower %s\t%s vs %s auth/s\tscrypt/native: %s\twithin 2x: %s\n",
			s.importedTokens, follower, lg.FmtRate(ss[0].Rate), lg.FmtRate(ss[1].Rate), lg.RatioSpread(ratios), verdict)
	}
	if s.access != nil {
		r := lg.Find(lg.Summarize(s.access, []string{accessReview}), accessReview)
		fmt.Fprintf(tw, "  SubjectAccessReview v1, HTTP keep-alive, at follower %s (%s)\t%s req/s, p50 %s, p99 %s\tvs gRPC Authorize: %s\treported (no target)\n",
			follower, s.rbacObjects, lg.FmtRate(r.Rate), lg.FmtDur(r.P50), lg.FmtDur(r.P99), lg.RatioSpread(lg.PairRatios(s.access, accessReview, grpcAuthorize)))
	}
	tw.Flush()
}
