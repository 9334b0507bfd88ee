package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// oidcAnswer is one member's answer about a JWT.
type oidcAnswer struct {
	Member        string
	Authenticated bool
	User          string
	Groups        string
	Reason        string
	Message       string
}

// oidcAnswers asks every running member about tok (linearizable, so each
// answer reflects every write committed before the call) and returns the
// answers in member order.
func oidcAnswers(ctx context.Context, t *testing.T, c *harness.Cluster, tok string) []oidcAnswer {
	t.Helper()
	var out []oidcAnswer
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatalf("%s: authenticate: %v", m.Name, err)
		}
		out = append(out, oidcAnswer{Member: m.Name, Authenticated: r.GetAuthenticated(), User: r.GetUser().GetUsername(),
			Groups: strings.Join(r.GetUser().GetGroups(), ","), Reason: r.GetReason().String(), Message: r.GetMessage()})
	}
	return out
}

// expectEverywhere checks that every member answered alike: accepted as
// user with groups, or refused with reason and words in the message.
func expectEverywhere(t *testing.T, what string, got []oidcAnswer, accepted bool, user, groups, reason, words string) {
	t.Helper()
	for _, a := range got {
		ok := a.Authenticated == accepted
		if accepted {
			ok = ok && a.User == user && a.Groups == groups
		} else {
			ok = ok && a.Reason == reason && strings.Contains(a.Message, words)
		}
		if !ok {
			t.Fatalf("%s: %s answered %+v; want accepted=%v user=%q groups=%q reason=%s message containing %q", what, a.Member, a, accepted, user, groups, reason, words)
		}
	}
	if len(got) == 0 {
		t.Fatalf("%s: no member answered", what)
	}
}

// issuerFile writes an issuer configuration for provider p (trusting its
// CA) with the given leeway, as an operator would, and returns its path.
func issuerFile(t *testing.T, p *oidctest.Provider, leeway string) string {
	t.Helper()
	ca := "      " + strings.ReplaceAll(strings.TrimSpace(p.CAPEM), "\n", "\n      ")
	doc := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: [tokenstore, %s]
    audienceMatchPolicy: MatchAny
    certificateAuthority: |
%s
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
  leeway: %s
`, p.URL, apiAudience, ca, leeway)
	path := filepath.Join(t.TempDir(), "issuer-"+strings.ReplaceAll(leeway, " ", "")+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitKeys polls every running member until the issuer's replicated key
// ids are want.
func waitKeys(ctx context.Context, t *testing.T, c *harness.Cluster, issuer string, want ...string) {
	t.Helper()
	for {
		same := true
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			r, err := tokenstorev1.NewOIDCServiceClient(m.Conn()).GetIssuer(ctx, &tokenstorev1.GetIssuerRequest{Url: issuer})
			if err != nil || strings.Join(r.GetIssuer().GetKeyIds(), ",") != strings.Join(want, ",") {
				same = false
			}
		}
		if same {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("keys %v not replicated to every member: %v", want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestOIDCReplicatedKeySets runs the scenarios against a local
// provider (discovery + JWKS over HTTPS, tokens signed with go-jose) and a
// real three-member cluster: valid JWTs accepted with the mapped user on
// every member; wrong audience, wrong issuer, bad signature, expired and
// alg none refused everywhere; nbf 90 s ahead accepted with a 2-minute
// leeway and refused with none; a rotated key accepted everywhere after
// one refresh through the leader; a storm of unknown key ids costing at
// most one fetch per refresh interval; the provider shut down and the
// replicated keys still working, also on a restarted follower; and every
// request the provider ever saw came from the leader's process.
func TestOIDCReplicatedKeySets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	followers := c.Followers(leader)
	endpoints := followers[0].ClientAddr + "," + followers[1].ClientAddr

	k1, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := oidctest.NewKey("e1", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(c.ConnOwner, k1, e1)
	defer p.Close()

	// Configured at a follower with the CLI; the leader fetches the keys.
	out, errOut, code := tokenctl(ctx, t, "--endpoints", endpoints, "oidc", "put", "-f", issuerFile(t, p, "2m"), "-o", "json")
	if code != 0 {
		t.Fatalf("oidc put: exit %d: %s", code, errOut)
	}
	var put struct {
		Issuers []struct{ URL string }
	}
	if err := json.Unmarshal([]byte(out), &put); err != nil || len(put.Issuers) != 1 || put.Issuers[0].URL != p.URL {
		t.Fatalf("oidc put output %s (%v)", out, err)
	}
	waitKeys(ctx, t, c, p.URL, "k1", "e1")

	now := time.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		cl := oidctest.Claims(p.URL, "alice", []string{"tokenstore", apiAudience}, []string{"dev", "ops"}, now, now, now.Add(time.Hour))
		if mod != nil {
			mod(cl)
		}
		return cl
	}
	mint := func(k *oidctest.Key, cl map[string]any) string {
		s, err := k.Sign(cl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	rsTok, esTok := mint(k1, claims(nil)), mint(e1, claims(nil))
	expectEverywhere(t, "RS256", oidcAnswers(ctx, t, c, rsTok), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	expectEverywhere(t, "ES256", oidcAnswers(ctx, t, c, esTok), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	// The same answer through the TokenReview webhook, as kube-apiserver's
	// own webhook client sees it.
	kube := kubeAuthenticator(t, webhookKubeconfig(t, "oidc", followers[1].HTTPURL("/apis/authentication.k8s.io/v1/tokenreviews")), "v1")
	if a := ask(ctx, kube, rsTok, nil); !a.OK || a.User != "oidc:alice" || strings.Join(a.Groups, ",") != "oidc:dev,oidc:ops" {
		t.Fatalf("TokenReview at %s: %s", followers[1].Name, a)
	}

	stranger, err := oidctest.NewKey("k1", jose.RS256) // k1's id, another key
	if err != nil {
		t.Fatal(err)
	}
	none, err := oidctest.Unsigned(claims(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tok, reason, words string }{
		{"wrong audience", mint(k1, claims(func(cl map[string]any) { cl["aud"] = []string{"someone-else"} })), "DENY_REASON_AUDIENCE_MISMATCH", "audience"},
		{"wrong issuer", mint(k1, claims(func(cl map[string]any) { cl["iss"] = "https://other.example" })), "DENY_REASON_UNKNOWN", "not a configured OIDC issuer"},
		{"bad signature", mint(stranger, claims(nil)), "DENY_REASON_UNKNOWN", "signature"},
		{"expired 30 s ago", mint(e1, claims(func(cl map[string]any) { cl["exp"] = now.Add(-30 * time.Second).Unix() })), "DENY_REASON_EXPIRED", "expired"},
		{"alg none", none, "DENY_REASON_UNKNOWN", "none"},
	} {
		expectEverywhere(t, tc.name, oidcAnswers(ctx, t, c, tc.tok), false, "", "", tc.reason, tc.words)
	}

	// nbf 90 s ahead: within the issuer's 2-minute leeway, then not once
	// the leeway is put to zero.
	early := mint(k1, claims(func(cl map[string]any) { cl["nbf"] = time.Now().Add(90 * time.Second).Unix() }))
	expectEverywhere(t, "nbf +90s, leeway 2m", oidcAnswers(ctx, t, c, early), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", endpoints, "oidc", "put", "-f", issuerFile(t, p, "0s")); code != 0 {
		t.Fatalf("oidc put leeway 0: exit %d: %s", code, errOut)
	}
	expectEverywhere(t, "nbf +90s, leeway 0", oidcAnswers(ctx, t, c, early), false, "", "", "DENY_REASON_UNKNOWN", "nbf")
	// A new leeway is a new configuration from the same key source: the
	// keys were kept, not fetched again.
	expectEverywhere(t, "RS256 after the leeway change", oidcAnswers(ctx, t, c, rsTok), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")

	// Rotation: the provider replaces k1 by k2. A token signed with k2,
	// presented at a follower, asks the leader for one refresh; then every
	// member accepts it and refuses k1's tokens.
	k2, err := oidctest.NewKey("k2", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(k2, e1)
	rotated := mint(k2, claims(nil))
	first := oidcAnswers(ctx, t, c, rotated)
	for _, a := range first {
		if !a.Authenticated && !strings.Contains(a.Message, "refresh was requested") {
			t.Fatalf("unknown key id at %s: %+v", a.Member, a)
		}
	}
	for {
		all := true
		for _, a := range oidcAnswers(ctx, t, c, rotated) {
			all = all && a.Authenticated
		}
		if all {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rotated key never accepted everywhere: %+v", oidcAnswers(context.Background(), t, c, rotated))
		case <-time.After(200 * time.Millisecond):
		}
	}
	expectEverywhere(t, "rotated key", oidcAnswers(ctx, t, c, rotated), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	expectEverywhere(t, "retired key", oidcAnswers(ctx, t, c, rsTok), false, "", "", "DENY_REASON_UNKNOWN", "not in the issuer's replicated key set")
	// A storm of tokens with made-up key ids at the followers costs the
	// provider at most one fetch (discovery + JWKS) per 10 s refresh
	// interval, not one per token.
	forger, err := oidctest.NewKey("forged", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	before, stormStart := len(p.Requests()), time.Now()
	const storm = 200
	for i := range storm {
		cl := claims(nil)
		forged, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: forger.Private, KeyID: fmt.Sprintf("forged-%d", i)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(forged).Claims(cl).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		r, err := followers[i%2].Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok})
		if err != nil || r.GetAuthenticated() {
			t.Fatalf("forged key id at %s: %v %v", followers[i%2].Name, r, err)
		}
	}
	windows := 1 + int(time.Since(stormStart)/(10*time.Second))
	if got := len(p.Requests()) - before; got > 2*windows {
		t.Fatalf("%d tokens with unknown key ids over %s caused %d provider requests, want at most %d", storm, time.Since(stormStart).Round(time.Millisecond), got, 2*windows)
	}
	out, errOut, code = tokenctl(ctx, t, "--endpoints", endpoints, "oidc", "get", p.URL, "-o", "json")
	if code != 0 || !strings.Contains(out, `"k2"`) || strings.Contains(out, `"k1"`) {
		t.Fatalf("oidc get after rotation: exit %d: %s%s", code, out, errOut)
	}

	// The provider goes away: the replicated keys keep working, and a
	// forced refresh fails with a clear error instead of dropping them.
	p.Close()
	expectEverywhere(t, "provider down", oidcAnswers(ctx, t, c, rotated), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", endpoints, "oidc", "refresh", p.URL); code == 0 || !strings.Contains(errOut, "refresh OIDC issuer") {
		t.Fatalf("refresh with the provider down: exit %d: %s", code, errOut)
	}
	expectEverywhere(t, "after a failed refresh", oidcAnswers(ctx, t, c, esTok), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")
	// A follower killed and restarted while the provider is down reads
	// the keys back from its own state database.
	c.Kill(followers[0])
	if err := c.Start(followers[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	expectEverywhere(t, "after a follower restart, provider down", oidcAnswers(ctx, t, c, rotated), true, "oidc:alice", "oidc:dev,oidc:ops", "", "")

	// Followers never contacted the provider: every request it served
	// came from the process of a member that was leader at some point (on
	// a quiet machine, the one leader; an election under load may add
	// one), never from a member that only ever followed.
	leaders := leadersEver(t, c)
	if !leaders[leader.Name] {
		t.Fatalf("%s was leader but its log does not say so", leader.Name)
	}
	reqs := p.Requests()
	if len(reqs) < 4 { // first fetch and the rotation, discovery + JWKS each
		t.Fatalf("provider saw %d requests, want at least 4: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if !leaders[r.Owner] {
			t.Fatalf("provider request %s at %s came from %q, which was never leader (leaders: %v)", r.Path, r.At.Format(time.RFC3339Nano), r.Owner, leaders)
		}
	}
	if len(leaders) == len(c.Members) {
		t.Logf("every member was leader at some point: the test could not show a follower staying away")
	}
	t.Logf("provider requests: %d, all from members that were leader (%v)", len(reqs), leaders)
}

// leadersEver names the members whose log says they became leader.
func leadersEver(t *testing.T, c *harness.Cluster) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range c.Members {
		b, err := os.ReadFile(m.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "became leader at term") {
			out[m.Name] = true
		}
	}
	return out
}
