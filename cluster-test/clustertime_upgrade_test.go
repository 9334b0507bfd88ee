package clustertest

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// leaderClockRelease is the last commit whose members took the leader's
// clock as cluster time and ask only the leader for it (clock/v1).
const leaderClockRelease = "216a0f2a95377feefe4503caea975f42abb7e2e0"

// TestClusterTimeRollingUpgradeFromLeaderClock: three members of the
// release that followed the leader's clock, one of them 2 minutes slow,
// are replaced one at a time by this tree's binary while every running
// member is asked, all the time, about a token and about a JWT minted that
// moment (nbf = now). No answer may be a refusal: in every mixed state
// every member decides as the correct clocks do. At the end the cluster
// runs on the median.
func TestClusterTimeRollingUpgradeFromLeaderClock(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release")
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", leaderClockRelease+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s of the previous release is not in this clone (shallow?): %v", leaderClockRelease, err)
	}
	old := t.TempDir()
	began := time.Now()
	if err := harness.BuildRelease(root, leaderClockRelease, old); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the previous release in %v", time.Since(began).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tc := startTimeCluster(ctx, t, old, 3, map[int]time.Duration{2: -2 * time.Minute})
	c, skewed := tc.c, tc.c.Members[2]
	// The older release decides with the leader's clock: keep the skewed
	// member from leading it, which would be wrong before the upgrade.
	tc.moveLeadershipAway(ctx, t, skewed)
	if why := poll(ctx, 30*time.Second, func() (bool, string) {
		now := time.Now()
		wrong := tc.everywhere(ctx, t, tc.mint(t, now, now, now.Add(time.Hour)), true)
		return len(wrong) == 0, fmt.Sprint(wrong)
	}); why != "" {
		t.Fatalf("before the upgrade, a fresh JWT is refused by %s", why)
	}

	var restarting sync.Map // member name -> true while it is replaced
	var asked, refused atomic.Int64
	var firstRefusal atomic.Value
	load, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil {
				if _, down := restarting.Load(m.Name); down {
					time.Sleep(10 * time.Millisecond) // the member is being replaced
					continue
				}
				now := time.Now()
				for _, bearer := range []string{tc.used.GetBearerToken(), tc.mint(t, now, now, now.Add(time.Hour))} {
					qctx, cancel := context.WithTimeout(load, 2*time.Second)
					r, err := m.Auth.Authenticate(qctx, &tokenstorev1.AuthenticateRequest{Token: bearer})
					cancel()
					if _, down := restarting.Load(m.Name); down || load.Err() != nil {
						break
					}
					asked.Add(1)
					if err != nil || !r.GetAuthenticated() {
						refused.Add(1)
						firstRefusal.CompareAndSwap(nil, fmt.Sprintf("%s at %s: %v %v %s", m.Name, now.Format(time.RFC3339Nano), err, r.GetReason(), r.GetMessage()))
					}
				}
			}
		}()
	}
	for _, m := range []*harness.Member{c.Members[2], c.Members[1], c.Members[0]} {
		restarting.Store(m.Name, true)
		c.Terminate(m)
		m.Bin = bin
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		restarting.Delete(m.Name)
		// Some answers from every member in this mixed state.
		for n := asked.Load(); asked.Load() < n+30 && ctx.Err() == nil; {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s upgraded: %d answers so far, %d refused", m.Name, asked.Load(), refused.Load())
	}
	stop()
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Errorf("%d of %d authentications refused or failed during the upgrade; first: %v", n, asked.Load(), firstRefusal.Load())
	}
	tc.waitClocks(ctx, t) // every member on the median now
}
