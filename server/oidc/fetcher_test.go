package oidc

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc/oidctest"
)

// providerYAML configures the issuer of a local provider, trusting its CA.
func providerYAML(p *oidctest.Provider) string {
	ca := "    " + strings.ReplaceAll(strings.TrimSpace(p.CAPEM), "\n", "\n    ")
	return fmt.Sprintf("issuer:\n  url: %s\n  audiences: [tokenstore]\n  certificateAuthority: |\n%s\nclaimMappings:\n  username: {claim: sub, prefix: \"\"}\n", p.URL, ca)
}

// fetcherFixture is a fetcher whose proposals apply to a real store.
type fetcherFixture struct {
	store    *testStore
	fetcher  *Fetcher
	leader   atomic.Bool
	asked    []string
	proposed int
}

func newFetcherFixture(t *testing.T, p *oidctest.Provider, maxBytes int64) *fetcherFixture {
	ff := &fetcherFixture{store: newTestStore(t)}
	ff.store.put(t, providerYAML(p))
	ff.fetcher = NewFetcher(FetcherConfig{
		View:     ff.store.View,
		IsLeader: ff.leader.Load,
		Propose: func(_ context.Context, k *raftstorev1.SetOIDCIssuerKeys) (uint64, error) {
			ff.proposed++
			res := ff.store.apply(t, func(tx *bolt.Tx, i uint64) (Result, error) { return ff.store.ApplySetKeys(tx, i, k) })
			return ff.store.index, res.Err
		},
		AskLeader:        func(_ context.Context, is string) error { ff.asked = append(ff.asked, is); return nil },
		MinRefresh:       time.Hour,
		MaxDocumentBytes: maxBytes,
	})
	return ff
}

func TestFetcherOnlyLeaderFetchesAndRateLimits(t *testing.T) {
	k1, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(nil, k1)
	defer p.Close()
	ff := newFetcherFixture(t, p, 0)
	ctx := context.Background()

	// A follower never fetches; its unknown-key requests reach the leader
	// at most once per MinRefresh.
	ff.fetcher.fetchDue(ctx) // not called by Run on a follower, and still must not fetch
	for range 100 {
		ff.fetcher.RequestRefresh(p.URL)
	}
	ff.fetcher.askLeader(ctx)
	ff.fetcher.askLeader(ctx)
	if n := len(p.Requests()); n != 0 || len(ff.asked) != 1 {
		t.Fatalf("follower: %d provider requests, %d leader requests (want 0 and 1)", n, len(ff.asked))
	}

	ff.leader.Store(true)
	ff.fetcher.fetchDue(ctx)
	is := ff.store.View().Issuer(p.URL)
	if is.Keys.Len() != 1 || ff.proposed != 1 || len(p.Requests()) != 2 {
		t.Fatalf("first fetch: %d keys, %d proposals, %d requests", is.Keys.Len(), ff.proposed, len(p.Requests()))
	}
	ff.fetcher.fetchDue(ctx)
	if len(p.Requests()) != 2 {
		t.Fatal("fetched again without cause")
	}

	// Rotation: an unknown key id asks for a fetch, but not sooner than
	// MinRefresh after the last one.
	k2, err := oidctest.NewKey("k2", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(k1, k2)
	for range 100 {
		ff.fetcher.RequestRefresh(p.URL)
	}
	ff.fetcher.fetchDue(ctx)
	if len(p.Requests()) != 2 {
		t.Fatal("refresh within MinRefresh of the last fetch")
	}
	ff.fetcher.mu.Lock()
	ff.fetcher.state[p.URL].lastAttempt = time.Now().Add(-time.Hour - time.Second)
	ff.fetcher.mu.Unlock()
	ff.fetcher.fetchDue(ctx)
	ff.fetcher.fetchDue(ctx)
	if got := strings.Join(ff.store.View().Issuer(p.URL).Keys.IDs(), ","); got != "k1,k2" || len(p.Requests()) != 4 || ff.proposed != 2 {
		t.Fatalf("after rotation: keys %s, %d requests, %d proposals", got, len(p.Requests()), ff.proposed)
	}
	// An explicit refresh of an unchanged set proposes nothing.
	if changed, _, err := ff.fetcher.Refresh(ctx, p.URL); err != nil || changed || ff.proposed != 2 {
		t.Fatalf("refresh of an unchanged set: changed %v err %v proposals %d", changed, err, ff.proposed)
	}

	// The provider goes away: the fetch fails, backs off, keys stay.
	p.Close()
	if _, _, err := ff.fetcher.Refresh(ctx, p.URL); err == nil {
		t.Fatal("fetch from a closed provider succeeded")
	}
	ff.fetcher.mu.Lock()
	next := ff.fetcher.state[p.URL].nextTry
	ff.fetcher.mu.Unlock()
	if !next.After(time.Now()) {
		t.Fatal("no backoff after a failure")
	}
	if ff.store.View().Issuer(p.URL).Keys.Len() != 2 {
		t.Fatal("keys lost after a failed fetch")
	}
}

func TestFetcherBoundsDocumentSize(t *testing.T) {
	k1, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(nil, k1)
	defer p.Close()
	ff := newFetcherFixture(t, p, 300) // the discovery document fits, an RSA JWKS does not
	ff.leader.Store(true)
	_, _, err = ff.fetcher.Refresh(context.Background(), p.URL)
	if err == nil || !strings.Contains(err.Error(), "larger than 300 bytes") {
		t.Fatalf("oversized JWKS: %v", err)
	}
	if ff.proposed != 0 {
		t.Fatal("proposed keys from an oversized document")
	}
}

func TestFetcherRefusesUntrustedCertificate(t *testing.T) {
	k1, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(nil, k1)
	defer p.Close()
	ff := &fetcherFixture{store: newTestStore(t)}
	// Without the provider's CA the system roots apply, which do not
	// trust the test certificate.
	ff.store.put(t, fmt.Sprintf("issuer: {url: %s, audiences: [a]}\nclaimMappings: {username: {claim: sub, prefix: \"\"}}\n", p.URL))
	ff.leader.Store(true)
	ff.fetcher = NewFetcher(FetcherConfig{View: ff.store.View, IsLeader: ff.leader.Load,
		Propose: func(context.Context, *raftstorev1.SetOIDCIssuerKeys) (uint64, error) { ff.proposed++; return 0, nil }})
	if _, _, err := ff.fetcher.Refresh(context.Background(), p.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("fetch with an untrusted certificate: %v", err)
	}
}

// The leader refetches a set older than RefreshInterval, judged by the
// replicated fetch time as well as its own last fetch (a new leader does
// not refetch a set another leader fetched a moment ago), and replicates
// nothing when the set did not change.
func TestFetcherRefreshesOldSets(t *testing.T) {
	k1, err := oidctest.NewKey("k1", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	p := oidctest.Start(nil, k1)
	defer p.Close()
	ff := newFetcherFixture(t, p, 0)
	wall := time.Unix(1_900_000_000, 0)
	ff.fetcher.cfg.Now = func() time.Time { return wall }
	ff.leader.Store(true)
	ctx := context.Background()
	ff.fetcher.fetchDue(ctx)
	if got := ff.store.View().Issuer(p.URL).Record.GetKeysFetchedUnixNano(); got != wall.UnixNano() {
		t.Fatalf("fetch stamped %d, want the injected clock %d", got, wall.UnixNano())
	}
	// Another leader: no memory of its own, a set fetched 9 minutes ago.
	ff.fetcher.mu.Lock()
	clear(ff.fetcher.state)
	ff.fetcher.mu.Unlock()
	wall = wall.Add(9 * time.Minute)
	ff.fetcher.fetchDue(ctx)
	if n := len(p.Requests()); n != 2 {
		t.Fatalf("refetched a set fetched 9 minutes ago: %d requests", n)
	}
	wall = wall.Add(2 * time.Minute)
	ff.fetcher.fetchDue(ctx)
	if n := len(p.Requests()); n != 4 || ff.proposed != 1 {
		t.Fatalf("set fetched 11 minutes ago: %d requests (want 4), %d proposals (want 1: unchanged)", n, ff.proposed)
	}
}
