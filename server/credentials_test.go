package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// bearer sends a token as gRPC "authorization" metadata. In-process tests
// run members with --insecure on loopback, so it does not ask for TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// adminToken waits for the bootstrap admin token that a one-member cluster
// writes into its data directory once it leads, and returns it.
func adminToken(t testing.TB, dir string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
		if err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bootstrap admin token in %s: %v", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialAdmin connects to s as the bootstrap administrator.
func dialAdmin(t testing.TB, s *Server) *grpc.ClientConn {
	t.Helper()
	return dialAs(t, s, adminToken(t, s.cfg.DataDir))
}

// dialAs connects to s with a bearer token.
func dialAs(t testing.TB, s *Server, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.ClientAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
