package oidc

import (
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// FuzzVerify feeds arbitrary bearer tokens through the JWT path: header
// and claims parsing must never panic, anything LooksLikeJWT refuses is
// not a JWT at all, and nothing but a token signed by the issuer's key is
// ever accepted (the seeds include one; mutations of it must verify only
// if they decode to the same signed content).
//
//	go test -run '^$' -fuzz FuzzVerify -fuzztime 1m ./server/oidc/
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, "")
	valid := []string{sign(f, fx.rsa, fx.claims(nil)), sign(f, fx.ec, fx.claims(nil))}
	none, _ := oidctest.Unsigned(fx.claims(nil))
	for _, s := range []string{valid[0], valid[1], none, "a.b.c", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "tok_x:secret", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !LooksLikeJWT(s) {
			return // the token store's path
		}
		v := fx.validate.Verify(s, nil)
		if v.Reason == Accepted {
			if v.User.GetUsername() != "oidc:alice" || v.Issuer != testIssuer {
				t.Fatalf("accepted %q as %v", s, v.User)
			}
			// Accepted only if it carries the valid token's signature.
			// (The last base64url character may differ in its unused bits.)
			sig := s[strings.LastIndexByte(s, '.')+1:]
			known := false
			for _, v := range valid {
				known = known || (sig != "" && strings.HasPrefix(v[strings.LastIndexByte(v, '.')+1:], sig[:len(sig)-1]))
			}
			if !known {
				t.Fatalf("accepted a token with a different signature: %q", s)
			}
		}
		if v.Reason != Accepted && v.Message == "" {
			t.Fatalf("refusal without a message for %q", s)
		}
	})
}
