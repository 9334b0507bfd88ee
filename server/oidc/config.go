package oidc

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	apiserverv1beta1 "k8s.io/apiserver/pkg/apis/apiserver/v1beta1"
	"sigs.k8s.io/yaml"
)

// MaxLeeway bounds a per-issuer leeway: a larger one would accept tokens
// issued for a time far in the future, which no clock skew explains.
const MaxLeeway = 10 * time.Minute

// ErrCEL refuses a configuration that uses a CEL expression: silently
// ignoring a rule would accept tokens the operator meant to refuse.
var ErrCEL = errors.New("CEL expressions are not supported")

// Config is one issuer's configuration: a Kubernetes JWTAuthenticator, as
// an entry of AuthenticationConfiguration.jwt, plus Leeway.
type Config struct {
	apiserverv1beta1.JWTAuthenticator `json:",inline"`
	// Leeway, when set, replaces the member's --jwt-leeway for this issuer:
	// how far in the future nbf and iat may be. exp gets no leeway.
	Leeway *metav1.Duration `json:"leeway,omitempty"`
}

// authenticationConfiguration is the Kubernetes file an operator may
// already have; its jwt entries are the issuers.
type authenticationConfiguration struct {
	metav1.TypeMeta `json:",inline"`
	JWT             []Config        `json:"jwt"`
	Anonymous       json.RawMessage `json:"anonymous,omitempty"`
}

// ParseDocuments reads one or more YAML or JSON documents (separated by
// "---"), each a JWTAuthenticator (optionally with leeway) or an
// AuthenticationConfiguration, and returns the validated issuers. Unknown
// fields are errors, so a typo is never silently ignored.
func ParseDocuments(b []byte) ([]*Config, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*Config
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		cs, err := parseDocument(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, cs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no issuer found")
	}
	seen := map[string]bool{}
	for _, c := range out {
		if seen[c.Issuer.URL] {
			return nil, fmt.Errorf("issuer %s given twice", c.Issuer.URL)
		}
		seen[c.Issuer.URL] = true
	}
	return out, nil
}

func parseDocument(raw []byte) ([]*Config, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return nil, err
	}
	switch tm.Kind {
	case "AuthenticationConfiguration":
		var ac authenticationConfiguration
		if err := yaml.UnmarshalStrict(raw, &ac); err != nil {
			return nil, err
		}
		if len(ac.Anonymous) > 0 {
			return nil, errors.New("anonymous: not an issuer setting; remove it")
		}
		out := make([]*Config, 0, len(ac.JWT))
		for i := range ac.JWT {
			c := &ac.JWT[i]
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("jwt[%d]: %w", i, err)
			}
			out = append(out, c)
		}
		return out, nil
	case "":
		c, err := DecodeConfig(raw)
		if err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return []*Config{c}, nil
	default:
		return nil, fmt.Errorf("kind %q: want a JWTAuthenticator (no kind) or an AuthenticationConfiguration", tm.Kind)
	}
}

// DecodeConfig decodes a stored or given configuration (JSON or YAML)
// strictly, without validating it.
func DecodeConfig(b []byte) (*Config, error) {
	c := &Config{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Encode is the configuration as stored: JSON, the same bytes for the
// same configuration.
func (c *Config) Encode() ([]byte, error) { return json.Marshal(c) }

// Validate refuses what this package cannot enforce exactly as written.
func (c *Config) Validate() error {
	is := &c.Issuer
	if err := checkHTTPS(is.URL); err != nil {
		return fmt.Errorf("issuer.url: %w", err)
	}
	if is.DiscoveryURL != nil {
		if err := checkHTTPS(*is.DiscoveryURL); err != nil {
			return fmt.Errorf("issuer.discoveryURL: %w", err)
		}
		if strings.TrimSuffix(*is.DiscoveryURL, "/") == strings.TrimSuffix(is.URL, "/") {
			return errors.New("issuer.discoveryURL: must differ from issuer.url (leave it out to use url/.well-known/openid-configuration)")
		}
	}
	if is.CertificateAuthority != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(is.CertificateAuthority)) {
			return errors.New("issuer.certificateAuthority: no PEM certificate found")
		}
	}
	if len(is.Audiences) == 0 {
		return errors.New("issuer.audiences: at least one audience is required")
	}
	seen := map[string]bool{}
	for _, a := range is.Audiences {
		if a == "" || seen[a] {
			return fmt.Errorf("issuer.audiences: %q is empty or given twice", a)
		}
		seen[a] = true
	}
	switch {
	case len(is.Audiences) > 1 && is.AudienceMatchPolicy != apiserverv1beta1.AudienceMatchPolicyMatchAny:
		return errors.New("issuer.audienceMatchPolicy: must be MatchAny when more than one audience is given")
	case is.AudienceMatchPolicy != "" && is.AudienceMatchPolicy != apiserverv1beta1.AudienceMatchPolicyMatchAny:
		return fmt.Errorf("issuer.audienceMatchPolicy %q: want MatchAny or nothing", is.AudienceMatchPolicy)
	}
	if is.EgressSelectorType != "" {
		return errors.New("issuer.egressSelectorType: not supported (the leader fetches keys directly)")
	}
	claims := map[string]bool{}
	for i, r := range c.ClaimValidationRules {
		if r.Expression != "" {
			return fmt.Errorf("claimValidationRules[%d].expression: %w; use claim and requiredValue", i, ErrCEL)
		}
		if r.Claim == "" || claims[r.Claim] {
			return fmt.Errorf("claimValidationRules[%d]: claim is required and may appear once", i)
		}
		claims[r.Claim] = true
	}
	m := &c.ClaimMappings
	if m.Username.Expression != "" {
		return fmt.Errorf("claimMappings.username.expression: %w; use claim and prefix", ErrCEL)
	}
	if m.Username.Claim == "" {
		return errors.New("claimMappings.username.claim is required")
	}
	if m.Username.Prefix == nil {
		return errors.New(`claimMappings.username.prefix is required when claim is set (use "" for none)`)
	}
	if m.Groups.Expression != "" {
		return fmt.Errorf("claimMappings.groups.expression: %w; use claim and prefix", ErrCEL)
	}
	if m.Groups.Claim != "" && m.Groups.Prefix == nil {
		return errors.New(`claimMappings.groups.prefix is required when claim is set (use "" for none)`)
	}
	if m.Groups.Claim == "" && m.Groups.Prefix != nil {
		return errors.New("claimMappings.groups.prefix is set without a claim")
	}
	if m.UID.Expression != "" {
		return fmt.Errorf("claimMappings.uid.expression: %w; use claim", ErrCEL)
	}
	if len(m.Extra) > 0 {
		return fmt.Errorf("claimMappings.extra: valueExpression is CEL: %w", ErrCEL)
	}
	if len(c.UserValidationRules) > 0 {
		return fmt.Errorf("userValidationRules: %w", ErrCEL)
	}
	if l := c.Leeway; l != nil && (l.Duration < 0 || l.Duration > MaxLeeway) {
		return fmt.Errorf("leeway %s: must be between 0 and %s", l.Duration, MaxLeeway)
	}
	return nil
}

func checkHTTPS(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want an https URL without user, query or fragment", s)
	}
	return nil
}

// KeySource names where the issuer's keys come from. Keys fetched for one
// source are never used for another: changing the URL, discovery URL or
// CA bundle clears the replicated keys.
func (c *Config) KeySource() string {
	d := ""
	if c.Issuer.DiscoveryURL != nil {
		d = *c.Issuer.DiscoveryURL
	}
	sum := sha256.Sum256([]byte(c.Issuer.CertificateAuthority))
	return c.Issuer.URL + " " + d + " ca:" + hex.EncodeToString(sum[:8])
}

// DiscoveryDocumentURL is where the leader fetches the discovery document.
func (c *Config) DiscoveryDocumentURL() string {
	if c.Issuer.DiscoveryURL != nil {
		return *c.Issuer.DiscoveryURL
	}
	return strings.TrimSuffix(c.Issuer.URL, "/") + "/.well-known/openid-configuration"
}
