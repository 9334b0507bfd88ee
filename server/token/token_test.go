package token

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func TestGeneratedTokensParse(t *testing.T) {
	for i := 0; i < 100; i++ {
		id, err := NewID(time.Now())
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

// TestIDsSortByCreationTime checks what the state database's write path
// relies on: an id made later sorts after one made earlier, however the
// random bits fall, and ids made in the same millisecond still differ.
func TestIDsSortByCreationTime(t *testing.T) {
	base := time.Date(2026, 12, 3, 23, 59, 59, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		// Steps of 1 ms cross every carry of the low time bits; every
		// fourth id shares its millisecond with the one before.
		id, err := NewID(base.Add(time.Duration(i/4*37+i/4) * time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) || !strings.HasPrefix(id, IDPrefix) || len(id) != len(IDPrefix)+26 {
			t.Fatalf("id %q: want %q and 26 id characters", id, IDPrefix)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	for i := 4; i < len(ids); i += 4 {
		if ids[i-1] >= ids[i] {
			t.Fatalf("id %d (%s) does not sort after id %d (%s), made 38ms earlier", i, ids[i], i-1, ids[i-1])
		}
	}
	// Within a millisecond the order is random, across them it is time.
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	for i := 0; i < len(ids); i += 4 {
		group := append([]string(nil), ids[i:i+4]...)
		sort.Strings(group)
		for j := range group {
			if sorted[i+j] != group[j] {
				t.Fatalf("sorted ids mix milliseconds at %d", i+j)
			}
		}
	}
	// Times before 1970 (a broken clock) still make valid, unique ids.
	a, _ := NewID(time.Unix(-5, 0))
	b, _ := NewID(time.Unix(-5, 0))
	if !ValidID(a) || a == b {
		t.Fatalf("ids at a negative time: %q, %q", a, b)
	}
}

// TestOldIDsStayValid: ids made before ids carried the time (16 random
// characters) are still tokens.
func TestOldIDsStayValid(t *testing.T) {
	old := "token-" + enc.EncodeToString([]byte("0123456789"))
	secret, _ := NewSecret()
	if id, _, ok := Parse(Bearer(old, secret)); !ok || id != old {
		t.Fatalf("old id %q does not parse", old)
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
	id, _ := NewID(time.Now())
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
