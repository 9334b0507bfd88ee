package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestWritesAtAFollowerOutliveTheLeadersGracefulShutdown creates tokens at
// a follower without pause while the leader is stopped with SIGTERM, as a
// rolling upgrade does. The leader hands leadership over first, and while
// it does raft there refuses every proposal; the ones forwarded to it must
// come back to the follower and go to the next leader (raftstore's
// undelivered.go), so every create succeeds. Before, they were dropped
// unseen and each failed at its deadline with "may or may not have been
// applied".
func TestWritesAtAFollowerOutliveTheLeadersGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := newCluster(t, "--shutdown-delay", "500ms")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Followers(leader)[0]

	const writers = 8
	var (
		ok       atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := f.Tokens.CreateToken(cctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: fmt.Sprintf("h%d-%d", w, i)}})
				ccancel()
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("after %v: %v", time.Since(start).Round(time.Millisecond), err))
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// Writes flow before the leader is stopped, and until well after the
	// next one took over.
	waitCount(ctx, t, &ok, 200)
	c.Terminate(leader)
	next, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	waitCount(ctx, t, &ok, before+200)
	close(stop)
	wg.Wait()
	t.Logf("%d creates at %s while %s shut down and %s took over, %d failed", ok.Load(), f.Name, leader.Name, next.Name, len(failures))
	for i, msg := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("create failed: %s", msg)
	}
}

// waitCount waits for n to reach want; the writers advance it.
func waitCount(ctx context.Context, t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	for n.Load() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d writes done", n.Load(), want)
		case <-time.After(10 * time.Millisecond): // polling a counter the writers advance
		}
	}
}
