package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func testConfig(dir string) Config {
	c := DefaultConfig()
	c.Name, c.DataDir, c.InitialClusterToken = "solo", dir, "t"
	c.ListenClient, c.ListenPeer, c.ListenHTTP, c.AdvertisePeer = "127.0.0.1:0", "127.0.0.1:0", "", "127.0.0.1:1"
	c.TickInterval, c.MaxRequestBytes = 10*time.Millisecond, 64<<10
	// Plain text on loopback; callers authenticate with the bootstrap admin
	// token (dialAdmin). The webhooks and Authenticate are open, as the
	// tests of those paths post to them without credentials.
	c.Insecure, c.RequireClientAuth = true, false
	return c
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startSolo starts a one-member cluster and returns a connected client.
func startSolo(t *testing.T, dir string) (*Server, *grpc.ClientConn) {
	t.Helper()
	return startSoloConfig(t, testConfig(dir))
}

// startSoloConfig is startSolo with a configuration of testConfig's making.
func startSoloConfig(t *testing.T, cfg Config) (*Server, *grpc.ClientConn) {
	t.Helper()
	s, err := Start(context.Background(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conn := dialAdmin(t, s)
	waitServing(t, conn)
	return s, conn
}

// waitServing waits for SERVING through the standard health service.
func waitServing(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("health watch: %v", err)
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
}

func code(err error) codes.Code { return status.Code(err) }

func TestBadRequestsGetClearErrors(t *testing.T) {
	_, conn := startSolo(t, t.TempDir())
	tokens := tokenstorev1.NewTokenServiceClient(conn)
	auth := tokenstorev1.NewAuthServiceClient(conn)
	ctx := context.Background()

	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"create without user", func() error {
			_, err := tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{})
			return err
		}, codes.InvalidArgument},
		{"create with negative ttl", func() error {
			_, err := tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "a"}, Ttl: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument},
		{"oversized request", func() error {
			_, err := tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "a"}, Description: strings.Repeat("x", 100<<10)})
			return err
		}, codes.ResourceExhausted},
		{"get unknown id", func() error {
			_, err := tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: "token-nosuch"})
			return err
		}, codes.NotFound},
		{"get invalid id", func() error {
			_, err := tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: "../etc"})
			return err
		}, codes.InvalidArgument},
		{"update nothing", func() error {
			_, err := tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: "token-x"})
			return err
		}, codes.InvalidArgument},
		{"update unknown id", func() error {
			yes := true
			_, err := tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: "token-nosuch", Disabled: &yes})
			return err
		}, codes.NotFound},
		{"revoke unknown id", func() error {
			_, err := tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: "token-nosuch"})
			return err
		}, codes.NotFound},
		{"forged page token", func() error {
			_, err := tokens.ListTokens(ctx, &tokenstorev1.ListTokensRequest{PageToken: "!!!"})
			return err
		}, codes.InvalidArgument},
	}
	for _, c := range cases {
		if got := code(c.call()); got != c.want {
			t.Errorf("%s: code %v, want %v", c.name, got, c.want)
		}
	}
	// A malformed token is an answer, not an error.
	r, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: "garbage"})
	if err != nil || r.GetAuthenticated() || r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_MALFORMED {
		t.Errorf("malformed token: %v %v", r, err)
	}
}

func TestTokenLifecycleOverGRPC(t *testing.T) {
	_, conn := startSolo(t, t.TempDir())
	tokens := tokenstorev1.NewTokenServiceClient(conn)
	auth := tokenstorev1.NewAuthServiceClient(conn)
	ctx := context.Background()
	c, err := tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{Username: "alice", Groups: []string{"dev"}}, Ttl: durationpb.New(time.Hour), Description: "ci",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetToken().GetId()
	check := func(want tokenstorev1.DenyReason) {
		t.Helper()
		for _, cons := range []tokenstorev1.ReadConsistency{tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED, tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE} {
			r, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: c.GetBearerToken(), Consistency: cons})
			if err != nil {
				t.Fatal(err)
			}
			if r.GetReason() != want || r.GetHeader().GetMember() != "solo" || r.GetHeader().GetRevision() == 0 {
				t.Fatalf("%v: reason %v (want %v), header %v", cons, r.GetReason(), want, r.GetHeader())
			}
		}
	}
	check(tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED)
	yes := true
	if _, err := tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: id, Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	check(tokenstorev1.DenyReason_DENY_REASON_DISABLED)
	no := false
	if _, err := tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: id, Disabled: &no, ClearExpiry: true}); err != nil {
		t.Fatal(err)
	}
	g, err := tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id})
	if err != nil || g.GetToken().GetExpiresAt() != nil || g.GetToken().GetDescription() != "ci" {
		t.Fatalf("after clearing expiry: %v %v", g, err)
	}
	check(tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED)
	if _, err := tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	check(tokenstorev1.DenyReason_DENY_REASON_REVOKED)
}

func TestCorruptDataDirIsAClearError(t *testing.T) {
	dir := t.TempDir()
	s, _ := startSolo(t, dir)
	s.Stop()
	if err := os.WriteFile(filepath.Join(dir, "state.db"), []byte("this is not a bbolt file at all, sorry"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), testConfig(dir), quiet())
	if err == nil || !strings.Contains(err.Error(), "state.db") {
		t.Fatalf("start on a corrupt state.db: %v", err)
	}
	os.Remove(filepath.Join(dir, "state.db"))
	_, err = Start(context.Background(), testConfig(dir), quiet())
	if err == nil || !strings.Contains(err.Error(), "no state database") {
		t.Fatalf("start with state.db missing: %v", err)
	}
}

func TestOtherClustersDataIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, _ := startSolo(t, dir)
	s.Stop()
	cfg := testConfig(dir)
	cfg.InitialCluster = "solo=127.0.0.1:1"
	cfg.InitialClusterToken = "another"
	_, err := Start(context.Background(), cfg, quiet())
	if err == nil || !strings.Contains(err.Error(), "belongs to") {
		t.Fatalf("start with another cluster's data: %v", err)
	}
}
