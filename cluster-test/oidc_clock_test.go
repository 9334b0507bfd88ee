package clustertest

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apiserver/pkg/authentication/authenticator"

	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// jwtDecisions asks every member about a JWT over gRPC (linearizable) and
// through kube-apiserver's TokenReview client; the two must agree.
func jwtDecisions(ctx context.Context, t *testing.T, c *harness.Cluster, reviews map[string]authenticator.Token, tok string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, a := range oidcAnswers(ctx, t, c, tok) {
		if k := ask(ctx, reviews[a.Member], tok, nil); k.OK != a.Authenticated {
			t.Fatalf("%s: TokenReview says %s, gRPC says %+v", a.Member, k, a)
		}
		out[a.Member] = a.Authenticated
	}
	return out
}

// TestOIDCClusterTimeSkewedMember: one member's clock runs 2 minutes slow
// (--test-clock-offset=-2m). tokenctl status shows its offset, and with
// cluster time (the default) it accepts and refuses exactly the JWTs the
// others do, over gRPC and through kube-apiserver's TokenReview client: a
// fresh token (iat = nbf = now) is accepted everywhere, although on the
// skewed member's own clock it is 2 minutes in the future, beyond the
// 1-minute leeway; a token that expired 30 s ago is refused everywhere,
// although on that clock it has 90 s left. Restarted with --time-source
// local, the same member decides both the other way: the correction, not
// the leeway, made the members agree.
func TestOIDCClusterTimeSkewedMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, skewed := startSkewedCluster(ctx, t)
	st := waitOffsets(ctx, t, c, skewed, c.Members[0])
	if s := st[skewed.Name].Clock; !s.Applied || s.TimeSource != "cluster" {
		t.Fatalf("skewed member's clock %+v: want the offset applied with cluster time", *s)
	}
	table, errOut, code := tokenctl(ctx, t, "--endpoints", skewed.ClientAddr, "status", "-o", "table")
	if code != 0 {
		t.Fatalf("tokenctl status: exit %d: %s", code, errOut)
	}
	checkOffsetColumn(t, table, skewed.Name, skew)

	key, err := oidctest.NewKey("k1", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(nil, key)
	defer p.Close()
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", c.Members[0].ClientAddr, "oidc", "put", "-f", issuerFile(t, p, "1m")); code != 0 {
		t.Fatalf("oidc put: exit %d: %s", code, errOut)
	}
	waitKeys(ctx, t, c, p.URL, "k1")
	reviews := tokenReviewers(t, c)
	mint := func(iat, nbf, exp time.Time) string {
		s, err := key.Sign(oidctest.Claims(p.URL, "alice", []string{"tokenstore", apiAudience}, nil, iat, nbf, exp))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tokens := func() (fresh, expired string) {
		now := time.Now() // the unskewed members' clock, the leader's
		return mint(now, now, now.Add(time.Hour)), mint(now.Add(-time.Hour), now.Add(-time.Hour), now.Add(-30*time.Second))
	}

	fresh, expired := tokens()
	if got := jwtDecisions(ctx, t, c, reviews, fresh); !allEqual(got, true) {
		t.Errorf("fresh JWT (iat = nbf = now), cluster time: %v, want accepted by every member", got)
	}
	if got := jwtDecisions(ctx, t, c, reviews, expired); !allEqual(got, false) {
		t.Errorf("JWT expired 30 s ago, cluster time: %v, want refused by every member", got)
	}

	c.Terminate(skewed)
	skewed.Flags = append(skewed.Flags, "--time-source=local")
	if err := c.Start(skewed); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st = waitOffsets(ctx, t, c, skewed, c.Members[0])
	if s := st[skewed.Name].Clock; s.Applied || s.TimeSource != "local" {
		t.Fatalf("skewed member's clock %+v: want the offset measured but not applied", *s)
	}
	fresh, expired = tokens()
	for name, tc := range map[string]struct {
		tok        string
		othersSay  bool
		skewedSays bool
	}{"fresh": {fresh, true, false}, "expired 30 s ago": {expired, false, true}} {
		got := jwtDecisions(ctx, t, c, reviews, tc.tok)
		for _, m := range c.Members {
			want := tc.othersSay
			if m == skewed {
				want = tc.skewedSays
			}
			if got[m.Name] != want {
				t.Errorf("%s JWT, %s on local time: %s accepted=%v, want %v", name, skewed.Name, m.Name, got[m.Name], want)
			}
		}
	}
}
