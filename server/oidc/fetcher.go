package oidc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Defaults of FetcherConfig.
const (
	// DefaultRefreshInterval is how often the leader fetches every
	// issuer's keys when nothing asks sooner. Providers publish a new key
	// well before they sign with it, and an unknown key id asks sooner.
	DefaultRefreshInterval = 10 * time.Minute
	// DefaultMinRefresh is the least time between two fetches of one
	// issuer asked for by unknown key ids, and between two requests a
	// follower sends for one issuer: a flood of tokens with a made-up key
	// id costs the provider one request per interval, not a storm.
	DefaultMinRefresh = 10 * time.Second
	// DefaultFetchTimeout bounds one HTTP request to a provider.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxDocumentBytes bounds a discovery document or JWKS.
	DefaultMaxDocumentBytes = 1 << 20
	// maxBackoff bounds the wait after repeated failures.
	maxBackoff = 5 * time.Minute
)

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// View returns the replicated issuers.
	View func() *View
	// IsLeader says whether this member is the raft leader now.
	IsLeader func() bool
	// Propose replicates a changed key set and returns the index it was
	// applied at, after it was applied here.
	Propose func(context.Context, *raftstorev1.SetOIDCIssuerKeys) (uint64, error)
	// AskLeader sends a follower's refresh request for an issuer to the
	// leader (which calls RequestRefresh).
	AskLeader func(ctx context.Context, issuer string) error
	// Now is the wall clock that stamps fetched key sets and ages the
	// replicated ones (the cluster clock in a server; default time.Now).
	// Backoff and rate limits use the local monotonic clock.
	Now func() time.Time

	RefreshInterval  time.Duration
	MinRefresh       time.Duration
	FetchTimeout     time.Duration
	MaxDocumentBytes int64
	// Fetched, when set, is called after every fetch with its outcome
	// (metrics).
	Fetched func(issuer string, changed bool, err error)
	Logger  *slog.Logger
}

// issuerFetch is the fetcher's own (not replicated) memory of one issuer.
type issuerFetch struct {
	keySource   string
	lastAttempt time.Time
	lastSuccess time.Time
	failures    int
	nextTry     time.Time
	// wanted: an unknown key id asked for a fetch (leader side).
	wanted bool
	// asked is when this member last asked the leader (follower side).
	asked time.Time
}

// Fetcher keeps the replicated key sets current. Only the leader fetches;
// see the package doc.
type Fetcher struct {
	cfg  FetcherConfig
	wake chan struct{}
	// fetchMu serialises fetches, from the loop and from Refresh.
	fetchMu sync.Mutex

	mu     sync.Mutex
	state  map[string]*issuerFetch
	toAsk  map[string]bool
	client map[string]*http.Client // by key source
}

// NewFetcher returns a Fetcher; Run starts it.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = DefaultMinRefresh
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.MaxDocumentBytes <= 0 {
		cfg.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Fetcher{cfg: cfg, wake: make(chan struct{}, 1), state: map[string]*issuerFetch{}, toAsk: map[string]bool{}, client: map[string]*http.Client{}}
}

// entry returns the fetch memory of an issuer, reset when its key source
// changed. Call with f.mu held.
func (f *Fetcher) entry(is *Issuer) *issuerFetch {
	name := is.Record.GetName()
	e := f.state[name]
	if e == nil || e.keySource != is.Record.GetKeySource() {
		e = &issuerFetch{keySource: is.Record.GetKeySource()}
		f.state[name] = e
	}
	return e
}

// RequestRefresh asks for a fetch of an issuer's keys because a token
// named a key id not in the set. It never blocks and never fetches on
// the caller's goroutine. On the leader it marks the issuer wanted (the
// loop fetches it at most once per MinRefresh); on a follower it queues one
// request to the leader per issuer and MinRefresh.
func (f *Fetcher) RequestRefresh(issuer string) {
	now := time.Now()
	f.mu.Lock()
	if f.cfg.IsLeader() {
		if is := f.cfg.View().Issuer(issuer); is != nil {
			f.entry(is).wanted = true
		}
	} else {
		e := f.state[issuer]
		if e == nil {
			e = &issuerFetch{}
			f.state[issuer] = e
		}
		if now.Sub(e.asked) < f.cfg.MinRefresh {
			f.mu.Unlock()
			return
		}
		e.asked = now
		f.toAsk[issuer] = true
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run fetches while this member is leader and sends followers' requests
// until ctx ends.
func (f *Fetcher) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if f.cfg.IsLeader() {
			f.fetchDue(ctx)
		} else {
			f.askLeader(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wake:
		}
	}
}

// askLeader sends the queued refresh requests to the leader.
func (f *Fetcher) askLeader(ctx context.Context) {
	f.mu.Lock()
	names := make([]string, 0, len(f.toAsk))
	for n := range f.toAsk {
		names = append(names, n)
	}
	clear(f.toAsk)
	f.mu.Unlock()
	for _, n := range names {
		actx, cancel := context.WithTimeout(ctx, f.cfg.FetchTimeout)
		if err := f.cfg.AskLeader(actx, n); err != nil {
			f.cfg.Logger.Warn("could not ask the leader to refresh OIDC keys", "issuer", n, "err", err)
		}
		cancel()
	}
}

// fetchDue fetches every issuer that is due: never fetched, wanted (at
// most once per MinRefresh), or not fetched for RefreshInterval; in each
// case not before its backoff ends.
func (f *Fetcher) fetchDue(ctx context.Context) {
	now, wall := time.Now(), f.cfg.Now()
	var due []*Issuer
	view := f.cfg.View()
	f.mu.Lock()
	for name := range f.state {
		if view.Issuer(name) == nil {
			delete(f.state, name) // deleted issuer
		}
	}
	for _, is := range view.Issuers() {
		if is.Err != nil {
			continue
		}
		e := f.entry(is)
		if now.Before(e.nextTry) {
			continue
		}
		// age: since this member's last successful fetch, or since the
		// replicated set was fetched (by any leader), whichever is newer.
		age := time.Duration(1<<63 - 1)
		if !e.lastSuccess.IsZero() {
			age = now.Sub(e.lastSuccess)
		}
		if n := is.Record.GetKeysFetchedUnixNano(); n != 0 {
			age = min(age, wall.Sub(time.Unix(0, n)))
		}
		switch {
		case is.Keys.Len() == 0,
			e.wanted && now.Sub(e.lastAttempt) >= f.cfg.MinRefresh,
			age >= f.cfg.RefreshInterval:
			due = append(due, is)
		}
	}
	f.mu.Unlock()
	for _, is := range due {
		if ctx.Err() != nil || !f.cfg.IsLeader() {
			return
		}
		_, _, _ = f.fetch(ctx, is)
	}
}

// Refresh fetches an issuer's keys now (this member must be leader) and
// replicates them if they changed. It returns whether they changed and
// the index of the entry that changed them (0 when unchanged).
func (f *Fetcher) Refresh(ctx context.Context, issuer string) (bool, uint64, error) {
	if !f.cfg.IsLeader() {
		return false, 0, errors.New("not the leader")
	}
	is := f.cfg.View().Issuer(issuer)
	if is == nil {
		return false, 0, fmt.Errorf("issuer %s: %w", issuer, ErrNotFound)
	}
	if is.Err != nil {
		return false, 0, is.Err
	}
	return f.fetch(ctx, is)
}

// fetch fetches one issuer's keys and proposes them if they changed.
func (f *Fetcher) fetch(ctx context.Context, is *Issuer) (changed bool, index uint64, err error) {
	f.fetchMu.Lock()
	defer f.fetchMu.Unlock()
	name := is.Record.GetName()
	start, stamp := time.Now(), f.cfg.Now()
	f.mu.Lock()
	e := f.entry(is)
	e.lastAttempt, e.wanted = start, false
	client := f.httpClient(is)
	f.mu.Unlock()

	defer func() {
		var wait time.Duration
		f.mu.Lock()
		if err != nil {
			e.failures++
			wait = backoff(e.failures)
			e.nextTry = time.Now().Add(wait)
		} else {
			e.failures, e.nextTry, e.lastSuccess = 0, time.Time{}, start
		}
		f.mu.Unlock()
		if f.cfg.Fetched != nil {
			f.cfg.Fetched(name, changed, err)
		}
		if err != nil {
			f.cfg.Logger.Warn("OIDC key fetch failed; the replicated keys stay in use", "issuer", name, "err", err, "retry_in", wait.Round(time.Millisecond).String())
		} else if changed {
			f.cfg.Logger.Info("OIDC key set changed and replicated", "issuer", name, "index", index)
		}
	}()

	canon, err := f.download(ctx, client, is.Config)
	if err != nil {
		return false, 0, err
	}
	if bytes.Equal(canon, is.Record.GetJwks()) {
		return false, 0, nil
	}
	index, err = f.cfg.Propose(ctx, &raftstorev1.SetOIDCIssuerKeys{Name: name, KeySource: is.Record.GetKeySource(), Jwks: canon, FetchedUnixNano: stamp.UnixNano()})
	if err != nil {
		return false, 0, fmt.Errorf("replicate key set: %w", err)
	}
	return true, index, nil
}

// backoff is the wait after n failures in a row: 1 s doubling to 5 min,
// ±20% so members that become leader together do not fetch in step.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 10 {
		d = min(time.Second<<(n-1), maxBackoff)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// httpClient is the client for an issuer: its CA bundle (or the system
// roots), the fetch timeout, no redirects to plain HTTP. Call with f.mu held.
func (f *Fetcher) httpClient(is *Issuer) *http.Client {
	src := is.Record.GetKeySource()
	if c := f.client[src]; c != nil {
		return c
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := is.Config.Issuer.CertificateAuthority; ca != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(ca))
		tr.TLSClientConfig.RootCAs = pool
	}
	c := &http.Client{
		Transport: tr,
		Timeout:   f.cfg.FetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
			}
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		},
	}
	f.client[src] = c
	return c
}

// discovery is the part of an OpenID Provider Configuration used here.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// download fetches the discovery document and the JWKS it names and
// returns the canonical key set.
func (f *Fetcher) download(ctx context.Context, client *http.Client, c *Config) ([]byte, error) {
	b, err := f.get(ctx, client, c.DiscoveryDocumentURL())
	if err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	if d.Issuer != c.Issuer.URL {
		return nil, fmt.Errorf("discovery document names issuer %q, want %q", clip(d.Issuer), c.Issuer.URL)
	}
	if u, err := url.Parse(d.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("discovery document: jwks_uri %q is not an https URL", clip(d.JWKSURI))
	}
	b, err = f.get(ctx, client, d.JWKSURI)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	_, canon, err := ParseKeySet(b)
	if err != nil {
		return nil, err
	}
	return canon, nil
}

// get reads a document of at most MaxDocumentBytes.
func (f *Fetcher) get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > f.cfg.MaxDocumentBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, f.cfg.MaxDocumentBytes)
	}
	return b, nil
}
