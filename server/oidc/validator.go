package oidc

import (
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// MaxJWTLen bounds a JWT's length; longer bearer tokens are refused
// before any decoding.
const MaxJWTLen = 16 << 10

// DefaultLeeway is --jwt-leeway's default: how far in the future nbf and
// iat may be. It is what kube-apiserver allows on nbf, and covers the
// skew of an issuer with an unsynchronised clock. docs/oidc.md says why.
const DefaultLeeway = time.Minute

// Algorithms are the signature algorithms accepted. "none" and the HMAC
// algorithms are not among them: a token using one is refused before any
// key is looked at, so a public key can never serve as an HMAC secret.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Reason says why a JWT was refused.
type Reason int

// The reasons.
const (
	// Accepted: the token is valid.
	Accepted Reason = iota
	// Invalid: malformed, refused algorithm, unknown issuer, bad
	// signature, not valid yet, or a claim rule failed.
	Invalid
	// UnknownKey: signed with a key id not in the replicated key set (a
	// refresh was requested from the leader).
	UnknownKey
	// Expired: exp is not in the future.
	Expired
	// AudienceMismatch: no audience of the token is accepted.
	AudienceMismatch
)

// Verdict is the answer about one JWT.
type Verdict struct {
	Reason Reason
	// Message explains a refusal; empty when accepted. It names no member
	// and no time, so every member refuses a token in the same words.
	Message string
	// User is the mapped identity when accepted.
	User *tokenstorev1.UserInfo
	// Audiences are, when accepted, the audiences of the answer.
	Audiences []string
	// Issuer is the matched issuer's URL, or "".
	Issuer string
	// Revision is the applied index of the issuer state used.
	Revision uint64
}

// ValidatorConfig configures a Validator.
type ValidatorConfig struct {
	// View returns the issuers to validate with (Store.View).
	View func() *View
	// Now is the clock time checks use (the cluster clock in a server).
	Now func() time.Time
	// Leeway is how far in the future nbf and iat may be, for issuers
	// that set none.
	Leeway time.Duration
	// UnknownKey, when set, is called with the issuer URL when a token's
	// key id is not in the key set. It must not block.
	UnknownKey func(issuer string)
}

// Validator checks JWTs against the replicated issuers.
type Validator struct{ cfg ValidatorConfig }

// NewValidator returns a Validator.
func NewValidator(cfg ValidatorConfig) *Validator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Validator{cfg: cfg}
}

// LooksLikeJWT says whether a bearer token has the JWS compact form:
// three base64url segments separated by dots (the signature may be
// empty, as in an "alg: none" token, which is then refused as such).
func LooksLikeJWT(s string) bool {
	if len(s) > MaxJWTLen || strings.Count(s, ".") != 2 {
		return false
	}
	seg := 0
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if n == 0 {
				return false // empty header or payload
			}
			seg++
			n = 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			n++
		default:
			return false
		}
	}
	return seg == 2
}

// unverified are the claims read before the signature is checked, only to
// choose the issuer.
type unverified struct {
	Issuer string `json:"iss"`
}

func refuse(r Reason, format string, args ...any) Verdict {
	return Verdict{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Verify checks raw, a JWT, at the validator's clock, for the requested
// audiences (none: any the issuer accepts).
func (v *Validator) Verify(raw string, audiences []string) Verdict {
	view := v.cfg.View()
	res := v.verify(view, raw, audiences)
	res.Revision = view.Applied
	return res
}

func (v *Validator) verify(view *View, raw string, audiences []string) Verdict {
	if len(raw) > MaxJWTLen {
		return refuse(Invalid, "JWT longer than %d bytes", MaxJWTLen)
	}
	tok, err := jwt.ParseSigned(raw, Algorithms)
	if err != nil {
		return refuse(Invalid, "JWT refused: %v", trimJose(err))
	}
	if len(tok.Headers) != 1 {
		return refuse(Invalid, "JWT refused: want exactly one signature")
	}
	var pre unverified
	if err := tok.UnsafeClaimsWithoutVerification(&pre); err != nil {
		return refuse(Invalid, "JWT claims: %v", trimJose(err))
	}
	is := view.Issuer(pre.Issuer)
	if is == nil {
		return refuse(Invalid, "JWT issuer %q is not a configured OIDC issuer", clip(pre.Issuer))
	}
	if is.Err != nil {
		return Verdict{Reason: Invalid, Message: is.Err.Error(), Issuer: pre.Issuer}
	}
	h := tok.Headers[0]
	cands := is.Keys.candidates(h.KeyID, h.Algorithm)
	if len(cands) == 0 {
		if v.cfg.UnknownKey != nil {
			v.cfg.UnknownKey(pre.Issuer)
		}
		if is.Keys.Len() == 0 {
			return Verdict{Reason: UnknownKey, Issuer: pre.Issuer, Message: "issuer has no replicated keys yet; a refresh was requested from the leader"}
		}
		return Verdict{Reason: UnknownKey, Issuer: pre.Issuer, Message: fmt.Sprintf("JWT signing key %q (%s) is not in the issuer's replicated key set; a refresh was requested from the leader", clip(h.KeyID), h.Algorithm)}
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range cands {
		if err := tok.Claims(k.Key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Verdict{Reason: Invalid, Issuer: pre.Issuer, Message: "JWT signature does not verify with the issuer's key"}
	}
	res := v.check(is.Config, &std, all, audiences)
	res.Issuer = pre.Issuer
	return res
}

// check applies the time, audience and claim rules and maps the user.
func (v *Validator) check(c *Config, std *jwt.Claims, all map[string]any, audiences []string) Verdict {
	now := v.cfg.Now()
	leeway := v.cfg.Leeway
	if c.Leeway != nil {
		leeway = c.Leeway.Duration
	}
	if std.Expiry == nil {
		return refuse(Invalid, "JWT has no exp claim")
	}
	if !now.Before(std.Expiry.Time()) {
		return refuse(Expired, "token expired")
	}
	if std.NotBefore != nil && now.Add(leeway).Before(std.NotBefore.Time()) {
		return refuse(Invalid, "JWT not valid yet (nbf)")
	}
	if std.IssuedAt != nil && now.Add(leeway).Before(std.IssuedAt.Time()) {
		return refuse(Invalid, "JWT issued in the future (iat)")
	}
	var accepted []string
	for _, a := range c.Issuer.Audiences {
		if slices.Contains(std.Audience, a) {
			accepted = append(accepted, a)
		}
	}
	if len(accepted) == 0 {
		return refuse(AudienceMismatch, "JWT audience is not one the issuer is configured for")
	}
	if len(audiences) > 0 {
		var both []string
		for _, a := range audiences {
			if slices.Contains(std.Audience, a) {
				both = append(both, a)
			}
		}
		if len(both) == 0 {
			return refuse(AudienceMismatch, "token is not valid for any of the requested audiences")
		}
		accepted = both
	}
	for _, r := range c.ClaimValidationRules {
		s, ok := all[r.Claim].(string)
		if !ok || s != r.RequiredValue {
			return refuse(Invalid, "JWT claim %q does not have the required value", r.Claim)
		}
	}
	m := &c.ClaimMappings
	name, ok := all[m.Username.Claim].(string)
	if !ok || name == "" {
		return refuse(Invalid, "JWT has no string claim %q for the username", m.Username.Claim)
	}
	if m.Username.Claim == "email" {
		if ev, present := all["email_verified"]; present && ev != true {
			return refuse(Invalid, "JWT email is not verified (email_verified is not true)")
		}
	}
	u := &tokenstorev1.UserInfo{Username: *m.Username.Prefix + name}
	if strings.HasPrefix(u.Username, "system:") {
		return refuse(Invalid, "JWT username must not start with system:")
	}
	if m.Groups.Claim != "" {
		gs, err := stringList(all[m.Groups.Claim])
		if err != nil {
			return refuse(Invalid, "JWT claim %q for groups: %v", m.Groups.Claim, err)
		}
		for _, g := range gs {
			u.Groups = append(u.Groups, *m.Groups.Prefix+g)
		}
	}
	if m.UID.Claim != "" {
		uid, ok := all[m.UID.Claim].(string)
		if !ok {
			return refuse(Invalid, "JWT has no string claim %q for the uid", m.UID.Claim)
		}
		u.Uid = uid
	} else if std.Subject != "" {
		u.Uid = SubjectUID(std.Issuer, std.Subject)
	}
	return Verdict{Reason: Accepted, User: u, Audiences: accepted}
}

// stringList reads a groups claim: absent, a string, or a list of strings.
func stringList(v any) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("not a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a string or a list of strings")
}

// clip shortens untrusted text quoted in a refusal.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// trimJose drops go-jose's package prefix from an error.
func trimJose(err error) string {
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}

// SubjectUID is the uid of a JWT's user when the issuer maps no claim to
// the uid: "tokenstore:oidc:", the issuer, "#" and the subject. An issuer
// URL has no fragment, so the pair is unambiguous, and (iss, sub) is what
// OpenID Connect defines as the stable, never reassigned identifier of an
// end user. A JWT without sub has no uid, as in kube-apiserver.
func SubjectUID(issuer, subject string) string {
	return "tokenstore:oidc:" + issuer + "#" + subject
}
