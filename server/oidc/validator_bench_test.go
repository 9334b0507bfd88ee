package oidc

import (
	"testing"
)

// BenchmarkVerify is the in-process cost of validating one JWT (parse,
// issuer lookup, signature, claims, mapping) against the replicated keys:
//
//	go test -run '^$' -bench Verify -benchmem ./server/oidc/
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, "")
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(b, f.rsa, f.claims(nil))},
		{"ES256", sign(b, f.ec, f.claims(nil))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v := f.validate.Verify(tc.tok, nil); v.Reason != Accepted {
						b.Fatal(v.Message)
					}
				}
			})
		})
	}
}
