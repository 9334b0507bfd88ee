package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// waitFor polls cond until it holds; the retention loop gives no event to
// wait on besides its effects.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling: see above
	}
}

func createFor(t *testing.T, tokens tokenstorev1.TokenServiceClient, user string, ttl time.Duration, groups ...string) *tokenstorev1.CreateTokenResponse {
	t.Helper()
	req := &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: user, Groups: groups}}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	r, err := tokens.CreateToken(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", user, err)
	}
	return r
}

// With --token-retention, the leader deletes tokens revoked or expired
// longer ago than the retention, and nothing else: not a valid token, and
// not the revoked bootstrap admin token (its record keeps it from being
// created again).
func TestRetentionPurgesRevokedAndExpiredTokens(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.TokenRetention = time.Second
	s, conn := startSoloConfig(t, cfg)
	tokens := tokenstorev1.NewTokenServiceClient(conn)
	ctx := context.Background()

	keep := createFor(t, tokens, "keep", 0)
	short := createFor(t, tokens, "short", time.Second)
	rev := createFor(t, tokens, "revoked", 0)
	if _, err := tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: rev.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	// Another administrator revokes the bootstrap admin token.
	admin := createFor(t, tokens, "admin2", 0, cfg.AdminGroup)
	tokens2 := tokenstorev1.NewTokenServiceClient(dialAs(t, s, admin.GetBearerToken()))
	if _, err := tokens2.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: BootstrapAdminTokenID}); err != nil {
		t.Fatal(err)
	}

	gone := func(id string) bool {
		_, err := tokens2.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id})
		return code(err) == codes.NotFound
	}
	waitFor(t, "the expired and the revoked token to be purged", func() bool {
		return gone(short.GetToken().GetId()) && gone(rev.GetToken().GetId())
	})
	for _, id := range []string{keep.GetToken().GetId(), admin.GetToken().GetId(), BootstrapAdminTokenID} {
		if _, err := tokens2.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id}); err != nil {
			t.Errorf("%s: %v, want it kept", id, err)
		}
	}
	if n := testutil.ToFloat64(s.metrics.tokensPurged); n != 2 {
		t.Errorf("tokenstore_tokens_purged_total = %v, want 2", n)
	}
	// A purged token is an unknown token.
	r, err := tokenstorev1.NewAuthServiceClient(conn).Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: rev.GetBearerToken()})
	if err != nil || r.GetAuthenticated() || r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
		t.Errorf("authenticate a purged token: %v reason %v, want refused as unknown", err, r.GetReason())
	}
}

// A member that cannot apply a purge (a binary from before it, in a
// rolling upgrade) holds every purge back: a member applying an operation
// it does not know stops.
func TestRetentionWaitsForEveryMemberToApplyPurges(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.TokenRetention = time.Second
	cfg.TestNoFeatures = true
	s, conn := startSoloConfig(t, cfg)
	tokens := tokenstorev1.NewTokenServiceClient(conn)
	short := createFor(t, tokens, "short", time.Second)
	waitFor(t, "two deferred purges", func() bool { return testutil.ToFloat64(s.metrics.purgesDeferred) >= 2 })
	if _, err := tokens.GetToken(context.Background(), &tokenstorev1.GetTokenRequest{Id: short.GetToken().GetId()}); err != nil {
		t.Fatalf("the expired token was purged although a member cannot apply purges: %v", err)
	}
	if n := testutil.ToFloat64(s.metrics.tokensPurged); n != 0 {
		t.Fatalf("tokenstore_tokens_purged_total = %v", n)
	}
}
