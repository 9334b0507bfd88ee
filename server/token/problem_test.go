package token

import (
	"strings"
	"testing"
)

func TestDiagnose(t *testing.T) {
	good := "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	for _, c := range []struct {
		in   string
		want Problem
	}{
		{"token-abc:" + good, ProblemNone},
		{"", ProblemEmpty},
		{strings.Repeat("a", MaxBearerLen+1), ProblemOversize},
		{"token-abc:" + good + "\n", ProblemNonPrintable},
		{"token abc:" + good, ProblemNonPrintable},
		{"tökén:" + good, ProblemNonPrintable},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", ProblemNoSeparator},
		{"a:b:c", ProblemPartCount},
		{":" + good, ProblemBadID},
		{"Token-ABC:" + good, ProblemBadID},
		{"token-abc:short", ProblemBadSecret},
		{"token-abc:" + good + "!", ProblemBadSecret},
		{"token-abc:", ProblemBadSecret},
	} {
		got := Diagnose(c.in)
		if got != c.want {
			t.Errorf("Diagnose(%q) = %v, want %v", c.in, got, c.want)
		}
		if got != ProblemNone && (got.Explain() == "" || strings.Contains(got.Explain(), good)) {
			t.Errorf("%v: explanation %q", got, got.Explain())
		}
	}
	names := map[string]bool{}
	for _, p := range Problems {
		if names[p.String()] || p.String() == "unknown" {
			t.Errorf("problem %d has name %q (repeated or unknown)", p, p)
		}
		names[p.String()] = true
	}
}

// FuzzDiagnose checks that Diagnose and Parse agree on what is well formed.
func FuzzDiagnose(f *testing.F) {
	f.Add("token-abc:abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst")
	f.Add("a:b:c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, ok := Parse(s)
		if p := Diagnose(s); (p == ProblemNone) != ok {
			t.Fatalf("Parse(%q) ok=%v but Diagnose says %v", s, ok, p)
		}
	})
}
