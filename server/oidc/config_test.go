package oidc

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDocumentsKubernetesShape(t *testing.T) {
	doc := `apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://a.example
    audiences: [kube]
  claimMappings:
    username: {claim: email, prefix: ""}
- issuer:
    url: https://b.example
    discoveryURL: https://discovery.b.example/config
    audiences: [x, z]
    audienceMatchPolicy: MatchAny
  claimMappings:
    username: {claim: sub, prefix: "b:"}
    groups: {claim: roles, prefix: ""}
---
issuer: {url: "https://c.example", audiences: [kube]}
claimMappings: {username: {claim: sub, prefix: "c:"}}
leeway: 30s
`
	cs, err := ParseDocuments([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[1].DiscoveryDocumentURL() != "https://discovery.b.example/config" || cs[0].DiscoveryDocumentURL() != "https://a.example/.well-known/openid-configuration" {
		t.Fatalf("parsed %+v", cs)
	}
	if cs[2].Leeway == nil || cs[2].Leeway.Duration.String() != "30s" {
		t.Fatalf("leeway %v", cs[2].Leeway)
	}
	// The stored form reads back to the same configuration.
	b, err := cs[1].Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeConfig(b)
	if err != nil || back.KeySource() != cs[1].KeySource() || back.Validate() != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func TestParseDocumentsRefuses(t *testing.T) {
	base := "issuer: {url: https://a.example, audiences: [kube]}\nclaimMappings: {username: {claim: sub, prefix: \"\"}}\n"
	for name, tc := range map[string]struct{ doc, words string }{
		"http issuer":       {strings.Replace(base, "https://", "http://", 1), "https"},
		"no audience":       {strings.Replace(base, "audiences: [kube]", "audiences: []", 1), "audience"},
		"two audiences":     {strings.Replace(base, "[kube]", "[a, b]", 1), "MatchAny"},
		"unknown field":     {base + "bogus: 1\n", "bogus"},
		"no prefix":         {strings.Replace(base, `, prefix: ""`, "", 1), "prefix is required"},
		"username CEL":      {strings.Replace(base, `claim: sub, prefix: ""`, "expression: claims.sub", 1), "CEL"},
		"claim rule CEL":    {base + "claimValidationRules: [{expression: 'claims.x == 1'}]\n", "CEL"},
		"user rule CEL":     {base + "userValidationRules: [{expression: 'true'}]\n", "CEL"},
		"extra CEL":         {strings.Replace(base, "}}\n", "}, extra: [{key: a, valueExpression: \"'b'\"}]}\n", 1), "CEL"},
		"bad CA":            {strings.Replace(base, "audiences", "certificateAuthority: nope, audiences", 1), "PEM"},
		"leeway too large":  {base + "leeway: 1h\n", "leeway"},
		"kind":              {"kind: Pod\n", "kind"},
		"empty":             {"", "no issuer"},
		"duplicate":         {base + "---\n" + base, "twice"},
		"egress selector":   {strings.Replace(base, "audiences", "egressSelectorType: cluster, audiences", 1), "egress"},
		"anonymous section": {"apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\nanonymous: {enabled: true}\njwt: []\n", "anonymous"},
	} {
		_, err := ParseDocuments([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.words)
		}
		if strings.Contains(tc.words, "CEL") && !errors.Is(err, ErrCEL) {
			t.Errorf("%s: %v is not ErrCEL", name, err)
		}
	}
}
