package oidc

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

const testIssuer = "https://issuer.example"

func issuerYAML(url, leeway string) string {
	y := fmt.Sprintf(`issuer:
  url: %s
  audiences: [tokenstore, other]
  audienceMatchPolicy: MatchAny
claimValidationRules:
- claim: tenant
  requiredValue: acme
claimMappings:
  username: {claim: sub, prefix: "oidc:"}
  groups: {claim: groups, prefix: "oidc:"}
  uid: {claim: sub}
`, url)
	if leeway != "" {
		y += "leeway: " + leeway + "\n"
	}
	return y
}

func jwksOf(keys ...*oidctest.Key) []byte {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	b, _ := json.Marshal(set)
	return b
}

// fixture is a store with one issuer and an RS256 and an ES256 key.
type fixture struct {
	store    *testStore
	rsa, ec  *oidctest.Key
	now      time.Time
	unknown  []string
	validate *Validator
}

func newFixture(t testing.TB, leeway string) *fixture {
	t.Helper()
	f := &fixture{store: newTestStore(t), now: time.Unix(1_800_000_000, 0)}
	var err error
	if f.rsa, err = oidctest.NewKey("rsa-1", jose.RS256); err != nil {
		t.Fatal(err)
	}
	if f.ec, err = oidctest.NewKey("ec-1", jose.ES256); err != nil {
		t.Fatal(err)
	}
	f.store.put(t, issuerYAML(testIssuer, leeway))
	if r := f.store.setKeys(t, testIssuer, jwksOf(f.rsa, f.ec)); r.Err != nil || !r.Changed {
		t.Fatalf("set keys: %+v", r)
	}
	f.validate = NewValidator(ValidatorConfig{View: f.store.View, Now: func() time.Time { return f.now }, Leeway: time.Minute,
		UnknownKey: func(is string) { f.unknown = append(f.unknown, is) }})
	return f
}

func (f *fixture) claims(mod func(map[string]any)) map[string]any {
	c := oidctest.Claims(testIssuer, "alice", []string{"tokenstore"}, []string{"dev", "ops"}, f.now, f.now, f.now.Add(time.Hour))
	c["tenant"] = "acme"
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t testing.TB, k *oidctest.Key, c map[string]any) string {
	t.Helper()
	s, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyAcceptsAndMaps(t *testing.T) {
	f := newFixture(t, "")
	for _, k := range []*oidctest.Key{f.rsa, f.ec} {
		tok := sign(t, k, f.claims(nil))
		if !LooksLikeJWT(tok) {
			t.Fatalf("%s token not recognised as a JWT", k.Alg)
		}
		v := f.validate.Verify(tok, nil)
		if v.Reason != Accepted {
			t.Fatalf("%s: refused: %s", k.Alg, v.Message)
		}
		if v.User.GetUsername() != "oidc:alice" || strings.Join(v.User.GetGroups(), ",") != "oidc:dev,oidc:ops" || v.User.GetUid() != "alice" {
			t.Fatalf("%s: user %v", k.Alg, v.User)
		}
		if strings.Join(v.Audiences, ",") != "tokenstore" || v.Revision != f.store.index || v.Issuer != testIssuer {
			t.Fatalf("%s: audiences %v revision %d (want %d) issuer %q", k.Alg, v.Audiences, v.Revision, f.store.index, v.Issuer)
		}
		if v := f.validate.Verify(tok, []string{"other", "tokenstore"}); v.Reason != Accepted || strings.Join(v.Audiences, ",") != "tokenstore" {
			t.Fatalf("%s with requested audiences: %v %s", k.Alg, v.Audiences, v.Message)
		}
		if v := f.validate.Verify(tok, []string{"other"}); v.Reason != AudienceMismatch {
			t.Fatalf("%s: requested audience the token lacks: %v", k.Alg, v.Reason)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t, "")
	stranger, err := oidctest.NewKey("rsa-1", jose.RS256) // same kid, other key
	if err != nil {
		t.Fatal(err)
	}
	none, err := oidctest.Unsigned(f.claims(nil))
	if err != nil {
		t.Fatal(err)
	}
	// HMAC with the published RSA public key as the secret: the classic
	// algorithm-confusion forgery.
	der, _ := x509.MarshalPKIXPublicKey(f.rsa.Private.Public())
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", "rsa-1"))
	if err != nil {
		t.Fatal(err)
	}
	hmac, err := jwt.Signed(hs).Claims(f.claims(nil)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		tok   string
		want  Reason
		words string
	}{
		{"wrong audience", sign(t, f.rsa, f.claims(func(c map[string]any) { c["aud"] = []string{"kube"} })), AudienceMismatch, "audience"},
		{"wrong issuer", sign(t, f.rsa, f.claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), Invalid, "not a configured OIDC issuer"},
		{"bad signature", sign(t, stranger, f.claims(nil)), Invalid, "signature"},
		{"expired", sign(t, f.rsa, f.claims(func(c map[string]any) { c["exp"] = f.now.Add(-30 * time.Second).Unix() })), Expired, "expired"},
		{"expires now", sign(t, f.rsa, f.claims(func(c map[string]any) { c["exp"] = f.now.Unix() })), Expired, "expired"},
		{"no exp", sign(t, f.rsa, f.claims(func(c map[string]any) { delete(c, "exp") })), Invalid, "exp"},
		{"alg none", none, Invalid, "none"},
		{"HMAC with the public key", hmac, Invalid, "HS256"},
		{"nbf beyond leeway", sign(t, f.rsa, f.claims(func(c map[string]any) { c["nbf"] = f.now.Add(61 * time.Second).Unix() })), Invalid, "nbf"},
		{"iat beyond leeway", sign(t, f.rsa, f.claims(func(c map[string]any) { c["iat"] = f.now.Add(61 * time.Second).Unix() })), Invalid, "iat"},
		{"claim rule", sign(t, f.rsa, f.claims(func(c map[string]any) { c["tenant"] = "other" })), Invalid, "tenant"},
		{"no username claim", sign(t, f.rsa, f.claims(func(c map[string]any) { delete(c, "sub") })), Invalid, "username"},
		{"groups not strings", sign(t, f.rsa, f.claims(func(c map[string]any) { c["groups"] = []any{1} })), Invalid, "groups"},
	}
	for _, tc := range cases {
		v := f.validate.Verify(tc.tok, nil)
		if v.Reason != tc.want || !strings.Contains(v.Message, tc.words) {
			t.Errorf("%s: got %d %q, want %d containing %q", tc.name, v.Reason, v.Message, tc.want, tc.words)
		}
	}
	if len(f.unknown) != 0 {
		t.Fatalf("refresh requested for known keys: %v", f.unknown)
	}
}

func TestVerifyLeeway(t *testing.T) {
	for _, tc := range []struct {
		leeway string
		want   Reason
	}{{"2m", Accepted}, {"0s", Invalid}, {"", Invalid}} { // "": the member's 1 minute
		f := newFixture(t, tc.leeway)
		tok := sign(t, f.ec, f.claims(func(c map[string]any) { c["nbf"] = f.now.Add(90 * time.Second).Unix() }))
		if v := f.validate.Verify(tok, nil); v.Reason != tc.want {
			t.Errorf("leeway %q, nbf 90 s ahead: got %d (%s), want %d", tc.leeway, v.Reason, v.Message, tc.want)
		}
		// Expiry gets no leeway, whatever the issuer's.
		exp := sign(t, f.ec, f.claims(func(c map[string]any) { c["exp"] = f.now.Add(-time.Second).Unix() }))
		if v := f.validate.Verify(exp, nil); v.Reason != Expired {
			t.Errorf("leeway %q: token expired 1 s ago got %d", tc.leeway, v.Reason)
		}
	}
}

func TestVerifyUnknownKeyAsksForRefresh(t *testing.T) {
	f := newFixture(t, "")
	next, err := oidctest.NewKey("rsa-2", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, next, f.claims(nil))
	if v := f.validate.Verify(tok, nil); v.Reason != UnknownKey || len(f.unknown) != 1 || f.unknown[0] != testIssuer {
		t.Fatalf("unknown kid: %d %q, refresh requests %v", v.Reason, v.Message, f.unknown)
	}
	f.store.setKeys(t, testIssuer, jwksOf(f.rsa, next))
	if v := f.validate.Verify(tok, nil); v.Reason != Accepted {
		t.Fatalf("after the key set was replicated: %s", v.Message)
	}
	if v := f.validate.Verify(sign(t, f.ec, f.claims(nil)), nil); v.Reason != UnknownKey {
		t.Fatalf("key dropped from the set still accepted: %d", v.Reason)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"a.b.c": true, "a.b.": true, "a..c": false, ".b.c": false, "a.b": false, "a.b.c.d": false,
		"tok_abc:secret": false, "a+b.c.d": false, "": false, strings.Repeat("a", MaxJWTLen) + ".b.c": false,
	} {
		if got := LooksLikeJWT(s); got != want {
			t.Errorf("LooksLikeJWT(%.20q) = %v", s, got)
		}
	}
}

// Without a uid mapping the uid is SubjectUID of iss and sub; without sub
// there is none.
func TestUIDWithoutMapping(t *testing.T) {
	f := newFixture(t, "")
	cfgs, err := ParseDocuments([]byte(strings.Replace(issuerYAML(testIssuer, ""), "  uid: {claim: sub}\n", "", 1)))
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("parse: %v %v", cfgs, err)
	}
	exp := jwt.NewNumericDate(f.now.Add(time.Hour))
	// The claims as the validator reads them: decoded JSON.
	var all map[string]any
	b, _ := json.Marshal(f.claims(nil))
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	v := f.validate.check(cfgs[0], &jwt.Claims{Issuer: testIssuer, Subject: "alice", Expiry: exp, Audience: jwt.Audience{"tokenstore"}}, all, nil)
	if v.Reason != Accepted || v.User.GetUid() != "tokenstore:oidc:https://issuer.example#alice" || v.User.GetUid() != SubjectUID(testIssuer, "alice") {
		t.Errorf("with sub: %v %s, uid %q", v.Reason, v.Message, v.User.GetUid())
	}
	v = f.validate.check(cfgs[0], &jwt.Claims{Issuer: testIssuer, Expiry: exp, Audience: jwt.Audience{"tokenstore"}}, all, nil)
	if v.Reason != Accepted || v.User.GetUid() != "" {
		t.Errorf("without sub: %v %s, uid %q", v.Reason, v.Message, v.User.GetUid())
	}
}
