package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestRetentionPurgesTheSameTokensEverywhere runs three members with
// --token-retention 1s: tokens that expired or were revoked are deleted on
// every member, the others stay, every member holds the same state (hash)
// at the same revision, and so does a member restarted from its data
// directory afterwards.
func TestRetentionPurgesTheSameTokensEverywhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, "--token-retention", "1s")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var keep, drop []string
	for i := 0; i < 30; i++ {
		m := c.Members[i%len(c.Members)]
		req := &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: fmt.Sprintf("u%d", i)}}
		if i%3 == 0 {
			req.Ttl = durationpb.New(time.Second)
		}
		r, err := m.Tokens.CreateToken(ctx, req)
		if err != nil {
			t.Fatalf("create at %s: %v", m.Name, err)
		}
		id := r.GetToken().GetId()
		switch {
		case i%3 == 0:
			drop = append(drop, id)
		case i%3 == 1 && i%2 == 1:
			if _, err := m.Tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: id}); err != nil {
				t.Fatalf("revoke at %s: %v", m.Name, err)
			}
			drop = append(drop, id)
		default:
			keep = append(keep, id)
		}
	}
	// Wait for the purge as every member sees it: a linearizable list
	// holding exactly the kept tokens.
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range c.Members {
		for {
			ids := map[string]bool{}
			for _, tok := range listAll(ctx, t, m) { // linearizable
				ids[tok.GetId()] = true
			}
			purged := true
			for _, id := range drop {
				purged = purged && !ids[id]
			}
			if purged {
				for _, id := range keep {
					if !ids[id] {
						t.Fatalf("%s lost %s, which is neither expired nor revoked", m.Name, id)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still lists expired or revoked tokens 30s after their retention", m.Name)
			}
			time.Sleep(100 * time.Millisecond) // polling: the purge's only event is its effect
		}
	}
	before := sameState(ctx, t, c)
	// A restart replays the purge from the log or state.db alike.
	m := c.Members[1]
	c.Kill(m)
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if after := sameState(ctx, t, c); after != before {
		// Only lastUsedAt could change the state here, and nothing
		// authenticates: a difference is the purge replayed differently.
		t.Fatalf("state after %s's restart %s, before %s", m.Name, after, before)
	}
}

// TestRetentionWaitsForAnOlderMember: during a rolling upgrade a member
// whose binary cannot apply a purge (emulated with --test-no-features: it
// reports none over the peer transport) holds every purge back, since it
// would stop on the operation; once it is restarted without the flag
// ("upgraded"), the leader purges.
func TestRetentionWaitsForAnOlderMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, "--token-retention", "1s")
	old := c.Members[2]
	c.Kill(old)
	old.Flags = append(old.Flags, "--test-no-features")
	if err := c.Start(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := leader.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "short"}, Ttl: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetToken().GetId()
	// Two rounds held back after the token expired (rounds run every
	// second on the leader).
	deferred := metricSum(t, leader, "tokenstore_token_purges_deferred_total")
	for metricSum(t, leader, "tokenstore_token_purges_deferred_total") < deferred+2 {
		select {
		case <-ctx.Done():
			t.Fatalf("the leader held back no purge while %s cannot apply one", old.Name)
		case <-time.After(200 * time.Millisecond): // polling the leader's metric
		}
	}
	for _, m := range c.Members {
		if _, err := m.Tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil {
			t.Fatalf("%s: %v: purged although %s cannot apply a purge", m.Name, err, old.Name)
		}
	}
	if n := metricSum(t, leader, "tokenstore_tokens_purged_total"); n != 0 {
		t.Fatalf("tokenstore_tokens_purged_total %v at the leader", n)
	}

	c.Terminate(old)
	old.Flags = old.Flags[:len(old.Flags)-1]
	if err := c.Start(old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := old.Tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if status.Code(err) == codes.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not purged 30s after %s was upgraded: %v", old.Name, err)
		}
		time.Sleep(100 * time.Millisecond) // polling: the purge's only event is its effect
	}
}
