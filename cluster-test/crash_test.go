package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// acked records the creates a member acknowledged while members are being
// killed: those, and only those, must survive.
type acked struct {
	mu      sync.Mutex
	bearers map[string]string // token id -> bearer
	n       atomic.Int64
}

func (a *acked) add(id, bearer string) {
	a.mu.Lock()
	a.bearers[id] = bearer
	a.mu.Unlock()
	a.n.Add(1)
}

// waitMore waits until n more creates were acknowledged after the call.
func (a *acked) waitMore(ctx context.Context, t *testing.T, n int64) {
	t.Helper()
	want := a.n.Load() + n
	for a.n.Load() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("creates stalled at %d acknowledged, waiting for %d", a.n.Load(), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestAcknowledgedCreatesSurviveSIGKILL kills members with SIGKILL while
// clients create tokens through every member: the leader, then a follower,
// then all three at once. state.db commits in batches (every 100 ms), so
// each kill drops applied entries that only the raft log (wal/) holds; after restart
// every acknowledged create authenticates at every member, each member
// lists every acknowledged token, and the state hashes agree.
func TestAcknowledgedCreatesSurviveSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	a := &acked{bearers: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := c.Members[(w+i)%len(c.Members)]
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				r, err := m.Tokens.CreateToken(rctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: fmt.Sprintf("w%d-%d", w, i), Groups: []string{"dev"}}})
				rcancel()
				if err != nil {
					// Killed member, no leader, outcome unknown: not
					// acknowledged, so nothing is owed. Do not spin on
					// a dead member.
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				a.add(r.GetToken().GetId(), r.GetBearerToken())
			}
		}()
	}

	restart := func(ms ...*harness.Member) {
		t.Helper()
		for _, m := range ms {
			if err := c.Start(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a.waitMore(ctx, t, 200)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	t.Logf("SIGKILLed leader %s after %d acknowledged creates", leader.Name, a.n.Load())
	a.waitMore(ctx, t, 100)
	restart(leader)
	a.waitMore(ctx, t, 100)

	leader, err = c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Followers(leader)[0]
	c.Kill(f)
	t.Logf("SIGKILLed follower %s after %d acknowledged creates", f.Name, a.n.Load())
	a.waitMore(ctx, t, 100)
	restart(f)
	a.waitMore(ctx, t, 200)

	for _, m := range c.Members {
		c.Kill(m)
	}
	close(stop)
	wg.Wait()
	t.Logf("SIGKILLed all members after %d acknowledged creates", a.n.Load())
	restart(c.Members...)

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range c.Members {
		listed := map[string]bool{}
		for _, tok := range listAll(ctx, t, m) {
			listed[tok.GetId()] = true
		}
		for id, bearer := range a.bearers {
			if !listed[id] {
				t.Fatalf("%s does not list acknowledged token %s", m.Name, id)
			}
			if v := verify(ctx, t, m, bearer, tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
				t.Fatalf("%s refuses acknowledged token %s: %v", m.Name, id, v.GetReason())
			}
		}
	}
	sameState(ctx, t, c)
}
