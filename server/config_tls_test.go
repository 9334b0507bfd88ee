package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func TestInsecureIsRefusedOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"every interface", func(c *Config) { c.ListenClient = ":23790" }, "--listen-client :23790"},
		{"a LAN address", func(c *Config) { c.ListenPeer = "10.0.0.1:23800" }, "--listen-peer 10.0.0.1:23800"},
		{"advertised elsewhere", func(c *Config) { c.AdvertisePeer = "node1.example:23800" }, "--advertise-peer node1.example:23800"},
		{"http on every interface", func(c *Config) { c.ListenHTTP = "0.0.0.0:23810" }, "--listen-http 0.0.0.0:23810"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t.TempDir())
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want a refusal of --insecure naming %s", err, tc.want)
			}
		})
	}
	c := testConfig(t.TempDir())
	c.ListenClient, c.AdvertisePeer = "localhost:0", "[::1]:23800"
	if err := c.Validate(); err != nil {
		t.Fatalf("loopback only: %v", err)
	}
}

func TestTLSIsRequiredWithoutInsecure(t *testing.T) {
	c := testConfig(t.TempDir())
	c.Insecure = false
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--tls-cert") || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("Validate without certificates: %v, want an error naming --tls-cert and --dev", err)
	}
	c.TLSCert, c.TLSKey, c.PeerCert, c.PeerKey, c.PeerCA = "a", "b", "c", "d", "e"
	if _, err := Start(context.Background(), c, quiet()); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("Start with missing files: %v, want an error naming the flag", err)
	}
}

// TestDevServesTLSAndNeedsAnAdmin starts a member with --dev: it serves
// TLS from a generated CA; the dev admin client certificate may create a
// token, a caller without credentials may not, and one with another client
// certificate of the same CA is authenticated but not an administrator.
func TestDevServesTLSAndNeedsAnAdmin(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir)
	c.Insecure, c.Dev, c.RequireClientAuth = false, true, true
	s, err := Start(context.Background(), c, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	caDir := filepath.Join(dir, "tls", "ca")
	caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	dial := func(certs ...tls.Certificate) tokenstorev1.TokenServiceClient {
		conn, err := grpc.NewClient(s.ClientAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return tokenstorev1.NewTokenServiceClient(conn)
	}
	admin, err := tls.LoadX509KeyPair(filepath.Join(caDir, "admin.crt"), filepath.Join(caDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	// The member's own serving certificate is signed by the same CA but is
	// not a client certificate of an administrator.
	other, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls", "peer.crt"), filepath.Join(dir, "tls", "peer.key"))
	if err != nil {
		t.Fatal(err)
	}
	req := &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice"}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := dial().CreateToken(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CreateToken without credentials: %v, want UNAUTHENTICATED", err)
	}
	if _, err := dial(other).CreateToken(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("CreateToken with a non-admin certificate: %v, want PERMISSION_DENIED", err)
	}
	for {
		_, err := dial(admin).CreateToken(ctx, req, grpc.WaitForReady(true))
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("CreateToken as the dev admin: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // no leader yet
	}
}
