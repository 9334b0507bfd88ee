package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// tlsBearer is bearer for a TLS connection.
type tlsBearer struct{ bearer }

func (tlsBearer) RequireTransportSecurity() bool { return true }

// BenchmarkAuthenticateGRPC measures one Authenticate over a kept gRPC
// connection to a one-member cluster: plain text without caller checks
// (--insecure, --require-client-auth=false), TLS with a client certificate,
// and TLS with the caller's own token in metadata (a second token check per
// call). The difference is what TLS and caller authentication cost on the
// hot path once connections exist.
func BenchmarkAuthenticateGRPC(b *testing.B) {
	for _, mode := range []string{"plaintext", "tls-cert", "tls-token"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			c := testConfig(dir)
			if mode != "plaintext" {
				c.Insecure, c.Dev, c.RequireClientAuth = false, true, true
			}
			s, err := Start(context.Background(), c, quiet())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Stop()
			tok := adminToken(b, dir)
			var opts []grpc.DialOption
			switch mode {
			case "plaintext":
				opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
			default:
				caDir := filepath.Join(dir, "tls", "ca")
				caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
				if err != nil {
					b.Fatal(err)
				}
				roots := x509.NewCertPool()
				roots.AppendCertsFromPEM(caPEM)
				cfg := &tls.Config{RootCAs: roots}
				if mode == "tls-cert" {
					pair, err := tls.LoadX509KeyPair(filepath.Join(caDir, "admin.crt"), filepath.Join(caDir, "admin.key"))
					if err != nil {
						b.Fatal(err)
					}
					cfg.Certificates = []tls.Certificate{pair}
				} else {
					opts = append(opts, grpc.WithPerRPCCredentials(tlsBearer{bearer(tok)}))
				}
				opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
			}
			conn, err := grpc.NewClient(s.ClientAddr(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			auth := tokenstorev1.NewAuthServiceClient(conn)
			ctx := context.Background()
			for deadline := time.Now().Add(10 * time.Second); ; {
				r, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok})
				if err == nil && r.GetAuthenticated() {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("never authenticated: %v %v", r, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok})
					if err != nil || !r.GetAuthenticated() {
						b.Errorf("authenticate: %v %v", r, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
