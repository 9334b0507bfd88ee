package rancher

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// Vectors computed outside Go (Python's hashlib: sha256, sha3_512 and
// scrypt with n=2**15, r=8, p=1, dklen=64) for the salt "salt-123" and a
// secret of Rancher's form, laid out as Rancher's hashers write them.
const (
	vectorSecret = "jv6xs2wgmg7dtnc8g8ntpzrcfjfxs2lfhtq8cn4kbkwbl6v8k4vxgw"
	vectorSHA256 = "$2:c2FsdC0xMjM:jNOtyLLyBc5tg37zM7i24WeliZZV4FGY+gjDWOfONnM"
	vectorSHA3   = "$3:1:c2FsdC0xMjM:GxS6H7To5skFXLrjhQgiqNXtlOttfJoxoCKrgONla31gNg/drZ79R1BR0nl4eznOg6Y1PG059Fnjb3LNWlyXSA"
	vectorScrypt = "$1:73616c742d313233:15:8:1:qCa4R/lnQ12ieJprltvPoKqUflwgN0V0u6RojroqYAWZX1FFj0VXnIRX1U3kEGKeEnEErL9xDMrFRgNvr9u5Dw"
)

func TestKnownVectors(t *testing.T) {
	for _, c := range []struct {
		hash   string
		format Format
	}{
		{vectorSHA256, FormatSHA256},
		{vectorSHA3, FormatSHA3},
		{vectorScrypt, FormatScrypt},
	} {
		h, err := ParseHash(c.hash)
		if err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		if h.Format() != c.format || h.Slow() != (c.format == FormatScrypt) || h.String() != c.hash {
			t.Errorf("%s: parsed as format %s, slow %v", c.format, h.Format(), h.Slow())
		}
		if !h.Verify(vectorSecret) {
			t.Errorf("%s: the secret does not verify", c.format)
		}
		for _, wrong := range []string{"", vectorSecret[1:], vectorSecret + "x", strings.ToUpper(vectorSecret)} {
			if h.Verify(wrong) {
				t.Errorf("%s: wrong secret %q verifies", c.format, wrong)
			}
		}
	}
}

// TestComputedVectors builds hashes with the primitives directly, in each
// of Rancher's layouts, for other salts and secrets, and checks they verify.
func TestComputedVectors(t *testing.T) {
	b64 := base64.RawStdEncoding.EncodeToString
	for i, secret := range []string{"a", "bcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstvwxz245678", strings.Repeat("z", 100)} {
		salt := []byte(fmt.Sprintf("s%07d", i))
		s2 := sha256.Sum256(append(append([]byte{}, salt...), secret...))
		s3 := sha3.Sum512(append(append([]byte{}, salt...), secret...))
		// A cheaper scrypt than Rancher's, which the format allows.
		dk, err := scrypt.Key([]byte(secret), salt, 1<<10, 8, 1, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []string{
			fmt.Sprintf("$2:%s:%s", b64(salt), b64(s2[:])),
			fmt.Sprintf("$3:1:%s:%s", b64(salt), b64(s3[:])),
			fmt.Sprintf("$1:%x:10:8:1:%s", salt, b64(dk)),
		} {
			h, err := ParseHash(enc)
			if err != nil {
				t.Fatalf("%s: %v", enc, err)
			}
			if !h.Verify(secret) || h.Verify(secret+"0") {
				t.Errorf("%s: verify of the right (and a wrong) secret failed", enc)
			}
		}
	}
}

// TestNewHashLayout checks that NewHash writes Rancher's layouts and
// parameters, and that what it writes verifies.
func TestNewHashLayout(t *testing.T) {
	b64 := `[A-Za-z0-9+/]`
	for f, re := range map[Format]*regexp.Regexp{
		FormatScrypt: regexp.MustCompile(`^\$1:[0-9a-f]{16}:15:8:1:` + b64 + `{86}$`),
		FormatSHA256: regexp.MustCompile(`^\$2:` + b64 + `{11}:` + b64 + `{43}$`),
		FormatSHA3:   regexp.MustCompile(`^\$3:1:` + b64 + `{11}:` + b64 + `{86}$`),
	} {
		enc, err := NewHash(f, vectorSecret)
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(enc) {
			t.Errorf("%s: %q does not have Rancher's layout %s", f, enc, re)
		}
		h, err := ParseHash(enc)
		if err != nil || !h.Verify(vectorSecret) {
			t.Errorf("%s: own hash does not verify: %v", f, err)
		}
		again, _ := NewHash(f, vectorSecret)
		if again == enc {
			t.Errorf("%s: two hashes of one secret are equal: the salt is not random", f)
		}
	}
}

func TestParseHashRejects(t *testing.T) {
	for _, bad := range []string{
		"",
		"abc",
		"$",
		"$4:abc:def",
		"$2:onlyonepart",
		"$2:c2FsdC0xMjM:dG9vc2hvcnQ", // key not 32 bytes
		"$2:c2Fsd@:jNOtyLLyBc5tg37zM7i24WeliZZV4FGY+gjDWOfONnM", // bad salt
		"$3:2:c2FsdC0xMjM:" + strings.Repeat("A", 86),           // unknown variation
		"$3:1:c2FsdC0xMjM",                                          // missing key
		"$1:zz:15:8:1:" + strings.Repeat("A", 86),                   // salt not hex
		"$1:73616c74:15:8:" + strings.Repeat("A", 86),               // too few parts
		"$1:73616c74:30:8:1:" + strings.Repeat("A", 86),             // N too large
		"$1:73616c74:15:8:100:" + strings.Repeat("A", 86),           // p too large
		"$1:73616c74:15:0:1:" + strings.Repeat("A", 86),             // r not positive
		"$1:73616c74:15:8:1:AAAA",                                   // key too short
		"$2:" + strings.Repeat("A", 600),                            // too long
		"2:c2FsdC0xMjM:jNOtyLLyBc5tg37zM7i24WeliZZV4FGY+gjDWOfONnM", // no '$'
	} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted it", bad)
		} else if len(bad) > 8 && strings.Contains(err.Error(), bad[4:]) {
			t.Errorf("ParseHash error repeats the hash: %v", err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, enc := range []string{vectorSHA256, vectorSHA3, vectorScrypt} {
		h, err := ParseHash(enc)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(h.Format().String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !h.Verify(vectorSecret) {
					b.Fatal("no match")
				}
			}
		})
	}
}
