package clustertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// BenchmarkOIDCFollower measures JWT authentications per second answered
// by a follower of a real three-member cluster over gRPC (64 concurrent
// callers on one connection), for RS256 and ES256 tokens:
//
//	go test -run '^$' -bench OIDCFollower -benchtime 20000x ./cluster-test/
func BenchmarkOIDCFollower(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := harness.New(bin, b.TempDir(), harness.Options{Size: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	if err := c.StartAll(); err != nil {
		b.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		b.Fatal(err)
	}
	follower := c.Followers(leader)[0]
	rs, err := oidctest.NewKey("rs", jose.RS256)
	if err != nil {
		b.Fatal(err)
	}
	es, err := oidctest.NewKey("es", jose.ES256)
	if err != nil {
		b.Fatal(err)
	}
	p := oidctest.Start(nil, rs, es)
	defer p.Close()
	ca := "  " + strings.ReplaceAll(strings.TrimSpace(p.CAPEM), "\n", "\n  ")
	doc := "issuer:\n url: " + p.URL + "\n audiences: [tokenstore]\n certificateAuthority: |\n" + ca +
		"\nclaimMappings:\n username: {claim: sub, prefix: \"\"}\n groups: {claim: groups, prefix: \"\"}\n"
	path := filepath.Join(b.TempDir(), "issuer.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}
	svc := tokenstorev1.NewOIDCServiceClient(follower.Conn())
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutIssuers(ctx, &tokenstorev1.PutIssuersRequest{Documents: [][]byte{data}}); err != nil {
		b.Fatal(err)
	}
	for {
		r, err := svc.GetIssuer(ctx, &tokenstorev1.GetIssuerRequest{Url: p.URL})
		if err == nil && len(r.GetIssuer().GetKeyIds()) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatal("keys never replicated")
		case <-time.After(100 * time.Millisecond):
		}
	}
	now := time.Now()
	for _, k := range []*oidctest.Key{rs, es} {
		tok, err := k.Sign(oidctest.Claims(p.URL, "bench", []string{"tokenstore"}, []string{"g"}, now, now, now.Add(time.Hour)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(k.Alg), func(b *testing.B) {
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := follower.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok})
					if err != nil || !r.GetAuthenticated() {
						b.Errorf("authenticate: %v %v", r, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auths/s")
		})
	}
}
