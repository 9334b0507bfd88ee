package clustertest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

const lastUsedInterval = 200 * time.Millisecond

// lastUsedAt reads a token's lastUsedAt as member m has applied it.
func lastUsedAt(ctx context.Context, t *testing.T, m *harness.Member, id string) time.Time {
	t.Helper()
	r, err := m.Tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id})
	if err != nil {
		t.Fatalf("get %s at %s: %v", id, m.Name, err)
	}
	if r.GetToken().GetLastUsedAt() == nil {
		return time.Time{}
	}
	return r.GetToken().GetLastUsedAt().AsTime()
}

// waitLastUsed polls every running member until its lastUsedAt for id is
// at least want, failing after deadline. Polling: a separate process gives
// no event for "applied".
func waitLastUsed(ctx context.Context, t *testing.T, c *harness.Cluster, id string, want, deadline time.Time) {
	t.Helper()
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		for {
			got := lastUsedAt(ctx, t, m, id)
			if !got.Before(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: lastUsedAt %v, want at least %v by %v", m.Name, got, want, deadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLastUsedConcurrentUsesNeverFail: 1,000 concurrent authentications of
// one token spread over all members all succeed, and within two intervals
// every member's lastUsedAt is at least the time of the last one.
// Granularity 0 records every use, so "the last one" is exact.
func TestLastUsedConcurrentUsesNeverFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Local time: the bounds below compare the members' stamps with this
	// process's clock, which is the members' own; with cluster time a
	// follower's stamp carries its offset estimate's error (up to half a
	// round trip, milliseconds under load). TestClusterTime* covers that.
	c := newCluster(t, "--last-used-interval", lastUsedInterval.String(), "--last-used-granularity", "0s", "--time-source=local")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok := create(ctx, t, c.Members[0], "hot")
	id := tok.GetToken().GetId()
	for _, m := range c.Members { // applied everywhere before the bounded reads
		verify(ctx, t, m, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
	}

	var failures atomic.Int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lastSent time.Time // the server's clock reads each use after its send
	start := make(chan struct{})
	for i := 0; i < 1000; i++ {
		m := c.Members[i%len(c.Members)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sent := time.Now()
			r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok.GetBearerToken()})
			if err != nil || !r.GetAuthenticated() {
				failures.Add(1)
			}
			mu.Lock()
			if sent.After(lastSent) {
				lastSent = sent
			}
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	done := time.Now()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of 1000 concurrent authentications failed", f)
	}
	// The latest use was recorded at or after the latest send; every member
	// shows at least that within two intervals (plus applying the entry),
	// and never a time after the last answer.
	waitLastUsed(ctx, t, c, id, lastSent, done.Add(2*lastUsedInterval+500*time.Millisecond))
	for _, m := range c.Members {
		if got := lastUsedAt(ctx, t, m, id); got.After(done) {
			t.Fatalf("%s: lastUsedAt %v is after the last answer (%v)", m.Name, got, done)
		}
	}

	// One more use at a known moment shows up everywhere.
	before := time.Now()
	if r, err := c.Members[1].Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok.GetBearerToken()}); err != nil || !r.GetAuthenticated() {
		t.Fatalf("authenticate: %v %v", r, err)
	}
	after := time.Now()
	waitLastUsed(ctx, t, c, id, before, after.Add(2*lastUsedInterval+500*time.Millisecond))
	for _, m := range c.Members {
		if got := lastUsedAt(ctx, t, m, id); got.After(after) {
			t.Fatalf("%s: lastUsedAt %v is after the last use (%v)", m.Name, got, after)
		}
	}
}

// TestLastUsedLogGrowthIsBounded: a sustained authentication load at every
// member adds at most one lastUsedAt entry per interval to the raft log.
func TestLastUsedLogGrowthIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, "--last-used-interval", lastUsedInterval.String(), "--last-used-granularity", "0s")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var bearers []string
	for i := 0; i < 10; i++ {
		bearers = append(bearers, create(ctx, t, c.Members[i%3], "load").GetBearerToken())
	}
	// Bounded reads may lag a create acknowledged elsewhere by a few
	// milliseconds: let every member apply them before the load.
	for _, m := range c.Members {
		verify(ctx, t, m, bearers[len(bearers)-1], tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	revision := func() uint64 {
		r, err := leader.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearers[0], Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetHeader().GetRevision()
	}
	before := revision()
	const duration = 3 * time.Second
	began := time.Now()
	var wg sync.WaitGroup
	var n atomic.Int64
	for g := 0; g < 12; g++ {
		m := c.Members[g%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(began) < duration; i++ {
				r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearers[i%len(bearers)]})
				if err != nil || !r.GetAuthenticated() {
					t.Errorf("authentication failed under load: %v %v", r, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	// Let the last interval's batch land, then count entries.
	waitLastUsed(ctx, t, c, tokIDOf(bearers[0]), began, time.Now().Add(2*lastUsedInterval+time.Second))
	grown := revision() - before
	limit := uint64(elapsed/lastUsedInterval) + 1 + 3 // +1 the tail flush, +3 slack (e.g. a leader no-op)
	t.Logf("%d authentications in %v grew the log by %d entries (limit %d)", n.Load(), elapsed.Round(time.Millisecond), grown, limit)
	if grown > limit {
		t.Fatalf("log grew by %d entries during %v of load; at most %d allowed at one per %v", grown, elapsed, limit, lastUsedInterval)
	}
	if grown == 0 {
		t.Fatal("no lastUsedAt entry at all during sustained load")
	}
}

func tokIDOf(bearer string) string {
	for i := 0; i < len(bearer); i++ {
		if bearer[i] == ':' {
			return bearer[:i]
		}
	}
	return bearer
}

// TestLastUsedSurvivesLeaderKill: uses recorded at followers before the
// leader is SIGKILLed are delivered to the next leader, and lastUsedAt keeps
// advancing afterwards.
func TestLastUsedSurvivesLeaderKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A long interval makes "mid-interval" wide: the kill lands while the
	// followers still hold their uses.
	const interval = 2 * time.Second
	c := newCluster(t, "--last-used-interval", interval.String(), "--last-used-granularity", "0s")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := create(ctx, t, leader, "failover")
	id := tok.GetToken().GetId()
	followers := c.Followers(leader)
	var lastFollowerUse time.Time
	for _, f := range followers {
		// Linearizable: the create was acknowledged by the leader and a
		// bounded read at a follower may not have applied it yet.
		if r := verify(ctx, t, f, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !r.GetAuthenticated() {
			t.Fatalf("%s refused the new token: %v", f.Name, r.GetReason())
		}
		lastFollowerUse = time.Now()
	}
	c.Kill(leader)
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	// The followers' uses (made just before the kill, at most one use
	// in flight at the old leader) arrive at the new leader.
	waitLastUsed(ctx, t, c, id, lastFollowerUse.Add(-50*time.Millisecond), time.Now().Add(3*interval+2*time.Second))
	// And it keeps advancing.
	before := time.Now()
	verify(ctx, t, followers[0], tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED)
	waitLastUsed(ctx, t, c, id, before, time.Now().Add(3*interval+2*time.Second))
}
