package token

import (
	"strings"
	"testing"
)

// FuzzParse checks the bearer token parser on any input: Parse and
// Diagnose agree, an accepted token is exactly id ":" secret within the
// length limits, and a refusal's words never repeat the input.
func FuzzParse(f *testing.F) {
	f.Add(Bearer("token-abcdefghijklmnop", strings.Repeat("a", 52)))
	f.Add("kubeconfig-u-abc:jv6xs2wgmg7dtnc8g8ntpzrcfjfxs2lfhtq8cn4kbkwbl6v8k4vxgw")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln") // a JWT
	f.Add("token-a:b:c")
	f.Add("Token-A:" + strings.Repeat("Z", 32))
	f.Add("token-a:" + strings.Repeat("z", maxSecretLen+1))
	f.Add(strings.Repeat("a", MaxBearerLen) + ":" + strings.Repeat("b", 40))
	f.Add("token-a:\x00\xff" + strings.Repeat("b", 40))
	f.Add("")
	f.Fuzz(func(t *testing.T, bearer string) {
		id, secret, ok := Parse(bearer)
		p := Diagnose(bearer)
		if ok != (p == ProblemNone) {
			t.Fatalf("Parse ok=%v but Diagnose says %s", ok, p)
		}
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("refused, yet returned id %q", id)
			}
			msg := p.Explain()
			if msg == "" || !strings.HasPrefix(msg, "malformed token") {
				t.Fatalf("refusal explained as %q", msg)
			}
			if len(bearer) >= 8 && strings.Contains(msg, bearer) {
				t.Fatalf("refusal %q repeats the input", msg)
			}
			return
		}
		if Bearer(id, secret) != bearer {
			t.Fatalf("round trip: %q + %q != input", id, secret)
		}
		if len(bearer) > MaxBearerLen || !ValidID(id) || len(secret) < minSecretLen || len(secret) > maxSecretLen {
			t.Fatalf("accepted out of form: id %d bytes, secret %d bytes", len(id), len(secret))
		}
		salt := make([]byte, SaltBytes)
		h := Hash(salt, secret)
		if !Matches(salt, secret, h[:]) || Matches(salt, secret+"x", h[:]) {
			t.Fatal("hash does not match its own secret, or matches another")
		}
	})
}
