// Package oidctest is a real local OIDC provider for tests: discovery
// document and JWKS served over HTTPS (httptest), keys made here, tokens
// signed with go-jose. It records every request and, given a function that
// names the process at the other end of a connection, who made it, so a
// test can prove which members contacted the provider.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is a signing key of the provider.
type Key struct {
	ID      string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
	signer  jose.Signer
}

// NewKey makes a key: RS256 (RSA 2048) or ES256 (P-256).
func NewKey(id string, alg jose.SignatureAlgorithm) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("oidctest: unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: id}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &Key{ID: id, Alg: alg, Private: priv, signer: s}, nil
}

// Sign makes a JWT of claims signed with k.
func (k *Key) Sign(claims any) (string, error) {
	return jwt.Signed(k.signer).Claims(claims).Serialize()
}

// JWK is k's public half.
func (k *Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// Unsigned makes an "alg: none" JWT of claims (no signature).
func Unsigned(claims any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + ".", nil
}

// Claims are the claims tests usually set; times are Unix seconds.
func Claims(iss, sub string, aud []string, groups []string, iat, nbf, exp time.Time) map[string]any {
	c := map[string]any{"iss": iss, "sub": sub, "aud": aud, "exp": exp.Unix()}
	if !iat.IsZero() {
		c["iat"] = iat.Unix()
	}
	if !nbf.IsZero() {
		c["nbf"] = nbf.Unix()
	}
	if groups != nil {
		c["groups"] = groups
	}
	return c
}

// Request is one request the provider served.
type Request struct {
	Path string
	// Owner is what the owner function named for the connection.
	Owner string
	At    time.Time
}

type ownerKey struct{}

// Provider is a running provider.
type Provider struct {
	// URL is the issuer URL (https://127.0.0.1:port).
	URL string
	// CAPEM is the PEM of the certificate the provider serves with, for
	// an issuer's certificateAuthority.
	CAPEM string

	srv      *httptest.Server
	mu       sync.Mutex
	keys     []*Key
	requests []Request
}

// Start starts a provider publishing keys. owner, when not nil, names the
// client of each accepted connection (called once per connection).
func Start(owner func(net.Conn) string, keys ...*Key) *Provider {
	p := &Provider{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.record(r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.URL, "jwks_uri": p.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		p.record(r)
		p.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range p.keys {
			set.Keys = append(set.Keys, k.JWK())
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	p.srv = httptest.NewUnstartedServer(mux)
	p.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if owner == nil {
			return ctx
		}
		return context.WithValue(ctx, ownerKey{}, owner(c))
	}
	p.srv.StartTLS()
	p.URL = p.srv.URL
	p.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}))
	return p
}

func (p *Provider) record(r *http.Request) {
	o, _ := r.Context().Value(ownerKey{}).(string)
	p.mu.Lock()
	p.requests = append(p.requests, Request{Path: r.URL.Path, Owner: o, At: time.Now()})
	p.mu.Unlock()
}

// Publish replaces the published keys (a rotation).
func (p *Provider) Publish(keys ...*Key) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// Requests returns the requests served so far.
func (p *Provider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Close shuts the provider down: later fetches fail to connect.
func (p *Provider) Close() { p.srv.Close() }
