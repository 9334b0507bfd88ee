package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

func create(ctx context.Context, t *testing.T, m *harness.Member, user string) *tokenstorev1.CreateTokenResponse {
	t.Helper()
	r, err := m.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"dev"}}})
	if err != nil {
		t.Fatalf("create %s at %s: %v", user, m.Name, err)
	}
	if r.GetHeader().GetMember() != m.Name {
		t.Fatalf("create answered by %q, asked %s", r.GetHeader().GetMember(), m.Name)
	}
	return r
}

func verify(ctx context.Context, t *testing.T, m *harness.Member, bearer string, c tokenstorev1.ReadConsistency) *tokenstorev1.AuthenticateResponse {
	t.Helper()
	r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearer, Consistency: c})
	if err != nil {
		t.Fatalf("authenticate at %s: %v", m.Name, err)
	}
	return r
}

func listAll(ctx context.Context, t *testing.T, m *harness.Member) []*tokenstorev1.Token {
	t.Helper()
	var out []*tokenstorev1.Token
	page := ""
	for {
		r, err := m.Tokens.ListTokens(ctx, &tokenstorev1.ListTokensRequest{PageSize: 7, PageToken: page, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatalf("list at %s: %v", m.Name, err)
		}
		out = append(out, r.GetTokens()...)
		if page = r.GetNextPageToken(); page == "" {
			return out
		}
	}
}

// TestLeaderSIGKILL is the end-to-end scenario with real processes:
// tokens created through a follower, the leader SIGKILLed, tokens verified
// at both survivors, writes continue, the killed member restarts and
// catches up to the same applied index with the same data.
func TestLeaderSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No lastUsedAt batches: the test compares every member's revision
	// after its verifies, and a batch committed between two of them would
	// move it.
	c := newCluster(t, "--last-used-interval", "0s")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Followers(leader)[0]

	var bearers []string
	for i := 0; i < 20; i++ {
		r := create(ctx, t, follower, fmt.Sprintf("user%d", i))
		bearers = append(bearers, r.GetBearerToken())
		// Read-your-writes on the member that took the write.
		if v := verify(ctx, t, follower, r.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED); !v.GetAuthenticated() {
			t.Fatalf("token not accepted right after create at the same member: %v", v.GetReason())
		}
	}

	// Every follower has applied the last create (a bounded read at the
	// other follower could otherwise lag it by a few milliseconds).
	for _, f := range c.Followers(leader) {
		verify(ctx, t, f, bearers[len(bearers)-1], tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
	}
	c.Kill(leader)
	survivors := c.Followers(leader)
	if len(survivors) != 2 {
		t.Fatalf("want 2 survivors, have %d", len(survivors))
	}
	// Bounded reads keep answering through the election (max staleness 5s).
	for _, m := range survivors {
		for _, b := range bearers {
			if v := verify(ctx, t, m, b, tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED); !v.GetAuthenticated() {
				t.Fatalf("%s refused a committed token after leader kill: %v", m.Name, v.GetReason())
			}
		}
	}
	newLeader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == leader {
		t.Fatal("killed member still reported leader")
	}
	for _, m := range survivors {
		r := create(ctx, t, m, "after-kill-"+m.Name)
		bearers = append(bearers, r.GetBearerToken())
		for _, other := range survivors {
			if v := verify(ctx, t, other, r.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
				t.Fatalf("%s: linearizable verify of a token created at %s: %v", other.Name, m.Name, v.GetReason())
			}
		}
	}

	if err := c.Start(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Same applied index and same data everywhere.
	want := listAll(ctx, t, newLeader)
	if len(want) != len(bearers) {
		t.Fatalf("leader lists %d tokens, created %d", len(want), len(bearers))
	}
	var rev uint64
	for _, m := range c.Members {
		v := verify(ctx, t, m, bearers[0], tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)
		if !v.GetAuthenticated() {
			t.Fatalf("%s refused token after restart: %v", m.Name, v.GetReason())
		}
		if rev == 0 {
			rev = v.GetHeader().GetRevision()
		} else if v.GetHeader().GetRevision() != rev {
			t.Fatalf("%s at revision %d, others at %d", m.Name, v.GetHeader().GetRevision(), rev)
		}
		got := listAll(ctx, t, m)
		if len(got) != len(want) {
			t.Fatalf("%s lists %d tokens, leader %d", m.Name, len(got), len(want))
		}
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("%s token %d differs:\n got %v\nwant %v", m.Name, i, got[i], want[i])
			}
		}
		for _, b := range bearers {
			if v := verify(ctx, t, m, b, tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED); !v.GetAuthenticated() {
				t.Fatalf("%s refused %s after catching up", m.Name, v.GetTokenId())
			}
		}
	}
}
