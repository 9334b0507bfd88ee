package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apiserver/pkg/authentication/authenticator"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// The tests in this file check that cluster time is the majority's: with
// one member of three (two of five) minutes off, whichever member leads,
// every member decides every time check as a correct clock would. The
// test process's clock is the correct one: the unskewed members run on it.

// ttl is the lifetime of the token whose expiry every member must decide
// within the same second; expiryMargin is how far before and after its
// expiry every member is asked.
const (
	ttl          = 20 * time.Second
	expiryMargin = 500 * time.Millisecond
)

// timeCluster is a cluster with skewed members, an OIDC issuer it trusts
// with a 1-minute leeway, and kube-apiserver's TokenReview client for
// every member.
type timeCluster struct {
	c       *harness.Cluster
	skews   map[string]time.Duration // by member name; absent means 0
	reviews map[string]authenticator.Token
	key     *oidctest.Key
	issuer  *oidctest.Provider
	// used is a token authenticated on every member to check the
	// lastUsedAt stamps.
	used *tokenstorev1.CreateTokenResponse
}

// startTimeCluster starts size members of the binaries in dir, member i
// with its clock shifted by skews[i] (--test-clock-offset), with lastUsedAt
// recorded for every use.
func startTimeCluster(ctx context.Context, t *testing.T, dir string, size int, skews map[int]time.Duration) *timeCluster {
	t.Helper()
	c, err := harness.New(dir, t.TempDir(), harness.Options{Size: size, Extra: []string{"--last-used-interval=200ms", "--last-used-granularity=0"}})
	if err != nil {
		t.Fatal(err)
	}
	useCluster(t, c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails(40))
		}
		c.Stop()
	})
	tc := &timeCluster{c: c, skews: map[string]time.Duration{}}
	for i, d := range skews {
		m := c.Members[i]
		m.Flags = append(m.Flags, "--test-clock-offset="+d.String())
		tc.skews[m.Name] = d
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if tc.key, err = oidctest.NewKey("k1", jose.ES256); err != nil {
		t.Fatal(err)
	}
	tc.issuer = oidctest.Start(nil, tc.key)
	t.Cleanup(tc.issuer.Close)
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", clientEndpoints(c), "oidc", "put", "-f", issuerFile(t, tc.issuer, "1m")); code != 0 {
		t.Fatalf("oidc put: exit %d: %s", code, errOut)
	}
	waitKeys(ctx, t, c, tc.issuer.URL, "k1")
	tc.reviews = tokenReviewers(t, c)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc.used = create(ctx, t, leader, "used")
	return tc
}

// clockReport is one member's clock in `tokenctl status -o json`.
type clockReport struct {
	OffsetSeconds *float64 `json:"offsetSeconds"`
	Outlier       bool     `json:"outlier"`
	Clocks        *int     `json:"clocks"`
	Synced        *bool    `json:"synced"`
}

// clocks returns every member's clock report as m's tokenctl status shows
// it, and the leader's name.
func (tc *timeCluster) clocks(ctx context.Context, t *testing.T, m *harness.Member) (string, map[string]*clockReport) {
	t.Helper()
	out, errOut, code := tokenctl(ctx, t, "--endpoints", m.ClientAddr, "status", "-o", "json")
	if code != 0 {
		t.Fatalf("tokenctl status at %s: exit %d: %s", m.Name, code, errOut)
	}
	var st struct {
		Leader *struct {
			Name string `json:"name"`
		} `json:"leader"`
		Members []struct {
			Name  string       `json:"name"`
			Clock *clockReport `json:"clock"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("tokenctl status JSON: %v\n%s", err, out)
	}
	got := map[string]*clockReport{}
	for _, s := range st.Members {
		got[s.Name] = s.Clock
	}
	leader := ""
	if st.Leader != nil {
		leader = st.Leader.Name
	}
	return leader, got
}

// waitClocks waits until every member has measured the others (and, where
// the binary reports it, is synchronised on every member's clock), then
// checks what tokenctl status shows: each member's offset to cluster time
// is minus its skew, and exactly the skewed members are outliers.
func (tc *timeCluster) waitClocks(ctx context.Context, t *testing.T) {
	t.Helper()
	n := len(tc.c.Members)
	var st map[string]*clockReport
	settled := func() (bool, string) {
		_, st = tc.clocks(ctx, t, tc.c.Members[0])
		for _, m := range tc.c.Members {
			r := st[m.Name]
			switch {
			case r == nil || r.OffsetSeconds == nil:
				return false, m.Name + ": clock not measured"
			case r.Synced != nil && !*r.Synced:
				return false, m.Name + ": not synchronised"
			case r.Clocks != nil && *r.Clocks != n:
				return false, fmt.Sprintf("%s: cluster time from %d clocks, want %d", m.Name, *r.Clocks, n)
			}
		}
		return true, ""
	}
	if why := poll(ctx, 30*time.Second, settled); why != "" {
		t.Errorf("clocks not settled within 30s: %s", why)
		return
	}
	for _, m := range tc.c.Members {
		r := st[m.Name]
		want := -tc.skews[m.Name]
		if got := time.Duration(*r.OffsetSeconds * float64(time.Second)); (got - want).Abs() > offsetTolerance {
			t.Errorf("%s: tokenctl status shows offset %v to cluster time, want %v±%v", m.Name, got, want, offsetTolerance)
		}
		if want := tc.skews[m.Name] != 0; r.Outlier != want {
			t.Errorf("%s: outlier %v, want %v", m.Name, r.Outlier, want)
		}
	}
}

// poll calls cond every 100 ms until it holds (returning "") or within
// passes (returning its last reason). Polling: another process's state
// gives no event to wait for.
func poll(ctx context.Context, within time.Duration, cond func() (bool, string)) string {
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return ""
		}
		if time.Now().After(deadline) {
			return why
		}
		select {
		case <-ctx.Done():
			return why + " (" + ctx.Err().Error() + ")"
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// moveLeadership transfers leadership to member to and waits until every
// member reports it.
func (tc *timeCluster) moveLeadership(ctx context.Context, t *testing.T, to *harness.Member) {
	t.Helper()
	if why := poll(ctx, 30*time.Second, func() (bool, string) {
		leader, err := tc.c.Leader(ctx)
		if err != nil {
			return false, err.Error()
		}
		if leader == to {
			return true, ""
		}
		if _, err := to.Cluster.TransferLeadership(ctx, &tokenstorev1.TransferLeadershipRequest{Name: to.Name}); err != nil {
			return false, err.Error()
		}
		return false, "leader " + leader.Name
	}); why != "" {
		t.Fatalf("leadership not moved to %s within 30s: %s", to.Name, why)
	}
}

// moveLeadershipAway transfers leadership off member from, if it has it.
func (tc *timeCluster) moveLeadershipAway(ctx context.Context, t *testing.T, from *harness.Member) {
	t.Helper()
	if leader, err := tc.c.Leader(ctx); err != nil {
		t.Fatal(err)
	} else if leader != from {
		return
	}
	for _, m := range tc.c.Members {
		if m != from {
			tc.moveLeadership(ctx, t, m)
			return
		}
	}
}

// mint signs a JWT of the cluster's issuer with the given times.
func (tc *timeCluster) mint(t *testing.T, iat, nbf, exp time.Time) string {
	t.Helper()
	s, err := tc.key.Sign(oidctest.Claims(tc.issuer.URL, "alice", []string{"tokenstore", apiAudience}, nil, iat, nbf, exp))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// everywhere asks every member about bearer over gRPC (linearizable) and
// through kube-apiserver's TokenReview client, and returns the members
// whose answer is not want (with what they said); the two interfaces must
// agree.
func (tc *timeCluster) everywhere(ctx context.Context, t *testing.T, bearer string, want bool) []string {
	t.Helper()
	var wrong []string
	for _, m := range tc.c.Members {
		r := verify(ctx, t, m, bearer, tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
		k := ask(ctx, tc.reviews[m.Name], bearer, nil)
		if k.OK != r.GetAuthenticated() {
			t.Errorf("%s: TokenReview says %s, gRPC says authenticated=%v (%v)", m.Name, k, r.GetAuthenticated(), r.GetReason())
		}
		if r.GetAuthenticated() != want || k.OK != want {
			wrong = append(wrong, fmt.Sprintf("%s (gRPC: %v %s; TokenReview: %v)", m.Name, r.GetReason(), r.GetMessage(), k.OK))
		}
	}
	return wrong
}

// check runs every time check once, on every member: the TTL of a token
// created at via is stamped on cluster time; a JWT with nbf = now is
// accepted and one with nbf beyond the leeway refused; lastUsedAt stamps
// made at each member agree with the correct clock; and the TTL token
// expires within the same second on every member.
func (tc *timeCluster) check(ctx context.Context, t *testing.T, via *harness.Member) {
	t.Helper()
	tc.waitClocks(ctx, t)

	before := time.Now()
	created, err := via.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{Username: "ttl", Groups: []string{"dev"}}, Ttl: durationpb.New(ttl)})
	after := time.Now()
	if err != nil {
		t.Fatalf("create a %v token at %s: %v", ttl, via.Name, err)
	}
	exp := created.GetToken().GetExpiresAt().AsTime()
	if lo, hi := before.Add(ttl-offsetTolerance), after.Add(ttl+offsetTolerance); exp.Before(lo) || exp.After(hi) {
		t.Errorf("%v token created at %s expires at %v, want within [%v, %v]: its creation time is not the majority's", ttl, via.Name, exp, lo, hi)
	}

	now := time.Now()
	if wrong := tc.everywhere(ctx, t, tc.mint(t, now, now, now.Add(time.Hour)), true); len(wrong) > 0 {
		t.Errorf("JWT with nbf = iat = now refused by %v, want accepted by every member", wrong)
	}
	late := now.Add(time.Minute + 30*time.Second) // beyond the 1-minute leeway
	if wrong := tc.everywhere(ctx, t, tc.mint(t, now, late, late.Add(time.Hour)), false); len(wrong) > 0 {
		t.Errorf("JWT with nbf = now + 90s (leeway 1m) accepted by %v, want refused by every member", wrong)
	}

	tc.checkLastUsed(ctx, t)

	// Waiting for a time of day, not for an event: the expiry is one.
	time.Sleep(time.Until(exp.Add(-expiryMargin)))
	if wrong := tc.everywhere(ctx, t, created.GetBearerToken(), true); len(wrong) > 0 {
		t.Errorf("%v before its expiry the TTL token is refused by %v, want accepted by every member", expiryMargin, wrong)
	}
	time.Sleep(time.Until(exp.Add(expiryMargin)))
	if wrong := tc.everywhere(ctx, t, created.GetBearerToken(), false); len(wrong) > 0 {
		t.Errorf("%v after its expiry the TTL token is accepted by %v, want refused by every member", expiryMargin, wrong)
	}
}

// checkLastUsed authenticates tc.used at each member in turn and checks
// that the lastUsedAt every member then shows is the time of that use on
// the correct clock. lastUsedAt is a max register: a stamp behind the
// previous one changes nothing, which the bounds below would catch too.
func (tc *timeCluster) checkLastUsed(ctx context.Context, t *testing.T) {
	t.Helper()
	id := tc.used.GetToken().GetId()
	for _, m := range tc.c.Members {
		before := time.Now()
		if r := verify(ctx, t, m, tc.used.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED); !r.GetAuthenticated() {
			t.Fatalf("%s refused the lastUsedAt token: %v", m.Name, r.GetReason())
		}
		after := time.Now()
		lo, hi := before.Add(-offsetTolerance), after.Add(offsetTolerance)
		for _, o := range tc.c.Members {
			var got time.Time
			if why := poll(ctx, 5*time.Second, func() (bool, string) {
				got = lastUsedAt(ctx, t, o, id)
				return !got.Before(lo), ""
			}); why != "" || got.After(hi) {
				t.Errorf("used at %s between %v and %v: %s shows lastUsedAt %v, want within [%v, %v]", m.Name,
					before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano), o.Name, got.Format(time.RFC3339Nano), lo, hi)
			}
		}
	}
}

// TestClusterTimeIsTheMajoritys: one member of three with its clock 2
// minutes slow, or 2 minutes fast, runs every time check on every member
// (tc.check) while it is a follower, after leadership moves to it, after it
// is killed as leader and restarted (leadership moved away), and once it
// leads again; and in a five-member cluster with one member 2 minutes slow
// and one 2 minutes fast, while each of them leads. Every member decides
// as the correct majority's clock would, through gRPC and kube-apiserver's
// TokenReview client.
func TestClusterTimeIsTheMajoritys(t *testing.T) {
	for _, skew := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
		t.Run(fmt.Sprintf("three members, one %v", skew), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			tc := startTimeCluster(ctx, t, bin, 3, map[int]time.Duration{2: skew})
			skewed := tc.c.Members[2]

			tc.moveLeadershipAway(ctx, t, skewed)
			t.Run("as follower", func(t *testing.T) { tc.check(ctx, t, skewed) })

			tc.moveLeadership(ctx, t, skewed)
			t.Run("as leader", func(t *testing.T) { tc.check(ctx, t, skewed) })

			tc.c.Kill(skewed)
			if _, err := tc.c.Leader(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tc.c.Start(skewed); err != nil {
				t.Fatal(err)
			}
			if err := tc.c.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			t.Run("restarted, leadership moved away", func(t *testing.T) { tc.check(ctx, t, skewed) })

			tc.moveLeadership(ctx, t, skewed)
			t.Run("restarted, as leader", func(t *testing.T) { tc.check(ctx, t, skewed) })
		})
	}
	t.Run("five members, one slow and one fast", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		tc := startTimeCluster(ctx, t, bin, 5, map[int]time.Duration{2: -2 * time.Minute, 4: 2 * time.Minute})
		for _, i := range []int{2, 4} {
			m := tc.c.Members[i]
			tc.moveLeadership(ctx, t, m)
			t.Run(fmt.Sprintf("%v member leads", tc.skews[m.Name]), func(t *testing.T) { tc.check(ctx, t, m) })
		}
	})
}
