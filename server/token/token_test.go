package token

import (
	"strings"
	"testing"
)

func TestGeneratedTokensParse(t *testing.T) {
	for i := 0; i < 100; i++ {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		secret, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(secret) != 52 {
			t.Fatalf("secret length %d, want 52 (256 bits in base32)", len(secret))
		}
		gotID, gotSecret, ok := Parse(Bearer(id, secret))
		if !ok || gotID != id || gotSecret != secret {
			t.Fatalf("Parse(%q) = %q, %q, %v", Bearer(id, "…"), gotID, "…", ok)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	good := "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	for _, in := range []string{
		"",
		"nocolon",
		"token-abc:",
		":" + good,
		"token-abc:short",
		"Token-ABC:" + good,              // uppercase id
		"token abc:" + good,              // space in id
		"token-abc:" + good + "!",        // bad secret char
		"token-abc:" + good + ":" + good, // second colon
		"token-abc:" + strings.Repeat("a", 129),
		strings.Repeat("a", 300) + ":" + good, // id too long
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", // a JWT is not this form
	} {
		if _, _, ok := Parse(in); ok {
			t.Errorf("Parse(%q) accepted malformed input", in)
		}
	}
}

func TestMatches(t *testing.T) {
	salt, _ := NewSalt()
	secret, _ := NewSecret()
	h := Hash(salt, secret)
	if !Matches(salt, secret, h[:]) {
		t.Fatal("secret does not match its own hash")
	}
	other, _ := NewSecret()
	if Matches(salt, other, h[:]) {
		t.Fatal("another secret matches")
	}
	salt2, _ := NewSalt()
	if Matches(salt2, secret, h[:]) {
		t.Fatal("same secret under another salt matches")
	}
}

func BenchmarkParseAndHash(b *testing.B) {
	salt, _ := NewSalt()
	id, _ := NewID()
	secret, _ := NewSecret()
	bearer := Bearer(id, secret)
	h := Hash(salt, secret)
	b.ReportAllocs()
	for b.Loop() {
		_, s, ok := Parse(bearer)
		if !ok || !Matches(salt, s, h[:]) {
			b.Fatal("no match")
		}
	}
}
