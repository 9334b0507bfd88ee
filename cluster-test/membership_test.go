package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// gossipCluster prepares n members that find each other through gossip
// (--join every gossip address) and bootstrap with --bootstrap-expect.
func gossipCluster(t *testing.T, n, expect int) (*harness.Cluster, []string) {
	t.Helper()
	c, err := harness.New(bin, t.TempDir(), harness.Options{Size: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails(60))
		}
		c.Stop()
	})
	for i := 0; i < n; i++ {
		if _, err := c.NewMember(fmt.Sprintf("n%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// Gossip ports are taken after the members' ports, distinct from them:
	// a released port may be handed out again before its process binds it.
	var seeds []string
	for i := 0; i < n; i++ {
		seeds = append(seeds, freeGossipPort(t, c))
	}
	for i, m := range c.Members {
		m.Flags = []string{"--listen-gossip", seeds[i], "--join", strings.Join(seeds, ",")}
		if expect > 0 {
			m.Flags = append(m.Flags, "--bootstrap-expect", fmt.Sprint(expect))
		}
	}
	return c, seeds
}

// joiner adds a member that joins through gossip seeds.
func joiner(t *testing.T, c *harness.Cluster, name string, seeds []string) *harness.Member {
	t.Helper()
	m, err := c.NewMember(name)
	if err != nil {
		t.Fatal(err)
	}
	m.Flags = []string{"--listen-gossip", freeGossipPort(t, c, seeds...), "--join", strings.Join(seeds, ",")}
	return m
}

// freeGossipPort returns a free port used by no member of c nor in taken.
func freeGossipPort(t *testing.T, c *harness.Cluster, taken ...string) string {
	t.Helper()
	used := map[string]bool{}
	for _, a := range taken {
		used[a] = true
	}
	for _, m := range c.Members {
		used[m.ClientAddr], used[m.PeerAddr], used[m.HTTPAddr], used[m.AdvertisePeer] = true, true, true, true
		for i, f := range m.Flags {
			if f == "--listen-gossip" && i+1 < len(m.Flags) {
				used[m.Flags[i+1]] = true
			}
		}
	}
	for {
		g, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !used[g] {
			return g
		}
	}
}

// waitVoters polls ListMembers at m until the membership is exactly want
// (names of voters) with no learners.
func waitVoters(ctx context.Context, t *testing.T, m *harness.Member, want ...string) {
	t.Helper()
	var last string
	for {
		r, err := m.Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
		if err == nil {
			var voters []string
			learners := 0
			for _, x := range r.GetMembers() {
				if x.GetLearner() {
					learners++
				} else {
					voters = append(voters, x.GetName())
				}
			}
			last = fmt.Sprintf("voters %v, %d learners", voters, learners)
			if learners == 0 && strings.Join(voters, ",") == strings.Join(want, ",") {
				return
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("membership at %s never became voters %v: last %s", m.Name, want, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stateHashes asks every running member for its state hash after a
// linearizable read and fails unless all agree.
func sameState(ctx context.Context, t *testing.T, c *harness.Cluster) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		hashes := map[string][]string{}
		revs := map[uint64]bool{}
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			r, err := m.Cluster.StateHash(ctx, &tokenstorev1.StateHashRequest{Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
			if err != nil {
				hashes["error: "+err.Error()] = append(hashes["error"], m.Name)
				continue
			}
			hashes[r.GetSha256()] = append(hashes[r.GetSha256()], m.Name)
			revs[r.GetHeader().GetRevision()] = true
		}
		if len(hashes) == 1 && len(revs) == 1 {
			for h := range hashes {
				return h
			}
		}
		// Different revisions (a lastUsedAt batch landing) may differ;
		// ask again until they meet.
		if time.Now().After(deadline) {
			t.Fatalf("members disagree on state: %v (revisions %v)", hashes, revs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBootstrapExpectFormsOneCluster: three members started with
// --bootstrap-expect 3 and --join to each other form exactly one cluster;
// with one member delayed, the first two wait for it.
func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	if err := c.Start(c.Members[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(c.Members[1]); err != nil {
		t.Fatal(err)
	}
	// Two of three expected: no cluster may form. Ask for a second.
	wait, cancelWait := context.WithTimeout(ctx, 1500*time.Millisecond)
	if _, err := c.Leader(wait); err == nil {
		t.Fatal("a cluster formed with two of three expected members")
	}
	cancelWait()
	if err := c.Start(c.Members[2]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitVoters(ctx, t, c.Members[0], "n1", "n2", "n3")
	var cid uint64
	for _, m := range c.Members {
		r, err := m.Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if cid == 0 {
			cid = r.GetClusterId()
		} else if r.GetClusterId() != cid {
			t.Fatalf("%s is in cluster %016x, n1 in %016x: more than one cluster formed", m.Name, r.GetClusterId(), cid)
		}
	}
	tok := create(ctx, t, c.Members[2], "boot")
	for _, m := range c.Members {
		if v := verify(ctx, t, m, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
			t.Fatalf("%s refuses: %v", m.Name, v.GetReason())
		}
	}
}

// TestScaleUpAndDownUnderLoad: 3 -> 5 -> 3 members through gossip joins
// and removals while clients keep creating and verifying tokens at the
// original members: no verify fails and no acknowledged create is lost.
func TestScaleUpAndDownUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, seeds := gossipCluster(t, 3, 3)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	orig := append([]*harness.Member(nil), c.Members...)

	var mu sync.Mutex
	var acked []*tokenstorev1.CreateTokenResponse
	var failedVerify, verifies atomic.Int64
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := orig[rng.IntN(len(orig))]
				if i%5 == 0 {
					cctx, cc := context.WithTimeout(ctx, 10*time.Second)
					r, err := m.Tokens.CreateToken(cctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: fmt.Sprintf("u%d-%d", g, i)}})
					cc()
					if err == nil {
						mu.Lock()
						acked = append(acked, r)
						mu.Unlock()
					}
					continue
				}
				mu.Lock()
				if len(acked) == 0 {
					mu.Unlock()
					continue
				}
				tok := acked[rng.IntN(len(acked))]
				mu.Unlock()
				// Linearizable: a token acknowledged at another member a
				// moment ago must be accepted (a bounded read may lag it).
				r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok.GetBearerToken(), Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
				verifies.Add(1)
				if err != nil || !r.GetAuthenticated() {
					failedVerify.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v %v", m.Name, r.GetReason(), err))
					mu.Unlock()
				}
			}
		}(g)
	}

	n4, n5 := joiner(t, c, "n4", seeds), joiner(t, c, "n5", seeds)
	for _, m := range []*harness.Member{n4, n5} {
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
		// One at a time, like a StatefulSet scaling up.
		waitVoters(ctx, t, orig[0], voterNames(c)...)
	}
	for _, m := range []*harness.Member{n5, n4} {
		if _, err := orig[0].Cluster.RemoveMember(ctx, &tokenstorev1.RemoveMemberRequest{Name: m.Name}); err != nil {
			t.Fatalf("remove %s: %v", m.Name, err)
		}
		c.Terminate(m)
	}
	waitVoters(ctx, t, orig[0], "n1", "n2", "n3")
	close(stop)
	wg.Wait()
	if f := failedVerify.Load(); f != 0 {
		t.Fatalf("%d of %d verifies failed during scaling: %v", f, verifies.Load(), failures[:min(len(failures), 5)])
	}
	t.Logf("%d verifies and %d acknowledged creates during 3 -> 5 -> 3", verifies.Load(), len(acked))
	if len(acked) == 0 || verifies.Load() == 0 {
		t.Fatal("the load made no progress")
	}
	for _, tok := range acked {
		if _, err := orig[1].Tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: tok.GetToken().GetId(), Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil {
			t.Fatalf("acknowledged token %s lost: %v", tok.GetToken().GetId(), err)
		}
	}
}

func voterNames(c *harness.Cluster) []string {
	var out []string
	for _, m := range c.Members {
		if m.Running() {
			out = append(out, m.Name)
		}
	}
	return out
}

// TestWipedMemberRejoins: a member whose data directory is lost restarts
// with the same flags, is replaced under a new id and converges.
func TestWipedMemberRejoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var toks []*tokenstorev1.CreateTokenResponse
	for i := 0; i < 10; i++ {
		toks = append(toks, create(ctx, t, c.Members[i%3], "w"))
	}
	before, err := c.Members[0].Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Members[2]
	c.Kill(victim)
	if err := c.Wipe(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(victim); err != nil {
		t.Fatal(err)
	}
	var oldID uint64
	for _, m := range before.GetMembers() {
		if m.GetName() == victim.Name {
			oldID = m.GetId()
		}
	}
	// The member comes back under a new id (ids are never reused) and is
	// promoted to voter once caught up.
	for {
		after, err := c.Members[0].Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		done := false
		for _, m := range after.GetMembers() {
			if m.GetName() == victim.Name && m.GetId() != oldID && !m.GetLearner() {
				done = true
			}
		}
		if done && len(after.GetMembers()) == 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("wiped member not replaced and promoted: %v", after.GetMembers())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if v := verify(ctx, t, victim, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
			t.Fatalf("rejoined member refuses %s: %v", tok.GetToken().GetId(), v.GetReason())
		}
	}
	sameState(ctx, t, c)
}

// TestRestartAllWithNewAddresses: every member restarts with new client and
// peer ports; gossip carries the new addresses and the cluster re-forms
// without any membership change.
func TestRestartAllWithNewAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok := create(ctx, t, c.Members[0], "moved")
	for _, m := range c.Members {
		c.Kill(m)
	}
	for _, m := range c.Members {
		if err := c.NewPorts(m); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok2 := create(ctx, t, c.Members[1], "after-move")
	for _, m := range c.Members {
		for _, b := range []string{tok.GetBearerToken(), tok2.GetBearerToken()} {
			if v := verify(ctx, t, m, b, tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
				t.Fatalf("%s refuses after the move: %v", m.Name, v.GetReason())
			}
		}
	}
	waitVoters(ctx, t, c.Members[0], "n1", "n2", "n3")
}

// TestForceNewClusterAfterQuorumLoss: two of three members are lost with
// their data; the survivor restarts with --force-new-cluster, two fresh
// members are added, and every acknowledged token is there.
func TestForceNewClusterAfterQuorumLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var toks []*tokenstorev1.CreateTokenResponse
	for i := 0; i < 10; i++ {
		toks = append(toks, create(ctx, t, c.Members[i%3], "dr"))
	}
	survivor := c.Members[0]
	for _, m := range c.Members[1:] {
		c.Kill(m)
		if err := c.Wipe(m); err != nil {
			t.Fatal(err)
		}
	}
	c.Kill(survivor)
	survivor.Flags = []string{"--force-new-cluster"}
	if err := c.Start(survivor); err != nil {
		t.Fatal(err)
	}
	survivor.Flags = nil // a later restart is an ordinary one
	waitVoters(ctx, t, survivor, "n1")
	// Re-add two fresh members the etcd way: member add, then start them
	// with --initial-cluster-state existing.
	for _, name := range []string{"n4", "n5"} {
		m, err := c.NewMember(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := survivor.Cluster.AddMember(ctx, &tokenstorev1.AddMemberRequest{Name: name, PeerAddress: m.AdvertisePeer}); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
		m.Flags = []string{"--initial-cluster-state", "existing", "--initial-cluster", "n1=" + survivor.AdvertisePeer + "," + name + "=" + m.AdvertisePeer}
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
	}
	waitVoters(ctx, t, survivor, "n1", "n4", "n5")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		for _, tok := range toks {
			if v := verify(ctx, t, m, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
				t.Fatalf("%s lost acknowledged token %s: %v", m.Name, tok.GetToken().GetId(), v.GetReason())
			}
		}
	}
	sameState(ctx, t, c)
}

// TestSnapshotSaveAndRestore: tokenctl snapshot save, tokenstore restore
// into a new one-member cluster: the state hash is identical.
func TestSnapshotSaveAndRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, "--last-used-interval", "0s") // no background writes between save and compare
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var toks []*tokenstorev1.CreateTokenResponse
	for i := 0; i < 15; i++ {
		toks = append(toks, create(ctx, t, c.Members[i%3], "snap"))
	}
	want := sameState(ctx, t, c)
	dir := t.TempDir()
	file := filepath.Join(dir, "state.snap")
	save := exec.CommandContext(ctx, filepath.Join(bin, "tokenctl"), "--endpoints", c.Members[1].ClientAddr, "snapshot", "save", file, "-o", "json")
	save.Env = c.CtlEnv()
	out, err := save.CombinedOutput()
	if err != nil {
		t.Fatalf("tokenctl snapshot save: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"sha256"`) || !strings.Contains(string(out), `"revision"`) {
		t.Fatalf("snapshot save output lacks revision or checksum: %s", out)
	}
	r, err := harness.New(bin, filepath.Join(dir, "restored"), harness.Options{Size: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	m, err := r.NewMember("r1")
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.CommandContext(ctx, filepath.Join(bin, "tokenstore"), "restore", "--snapshot", file, "--data-dir", m.DataDir, "--name", "r1", "--advertise-peer", m.AdvertisePeer).CombinedOutput()
	if err != nil {
		t.Fatalf("tokenstore restore: %v\n%s", err, out)
	}
	// Restoring over existing data is refused.
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, "tokenstore"), "restore", "--snapshot", file, "--data-dir", m.DataDir, "--name", "r1", "--advertise-peer", m.AdvertisePeer).CombinedOutput(); err == nil {
		t.Fatalf("restore over an existing data directory succeeded: %s", out)
	}
	m.Flags = []string{"--last-used-interval", "0s"}
	if err := r.Start(m); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sameState(ctx, t, r); got != want {
		t.Fatalf("restored state hash %s, source %s", got, want)
	}
	for _, tok := range toks {
		if v := verify(ctx, t, m, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
			t.Fatalf("restored member refuses %s", tok.GetToken().GetId())
		}
	}
	_ = os.Remove(file)
}

// TestDeadMemberLowersToleranceAndAutopilotRemovesIt: a dead voter stays a
// member by default and the reported failure tolerance drops to 0; with
// --autopilot-cleanup-dead-after the leader removes it and tolerance
// counts the remaining voters again.
func TestDeadMemberLowersToleranceAndAutopilotRemovesIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	for _, m := range c.Members {
		m.Flags = append(m.Flags, "--autopilot-cleanup-dead-after", "3s")
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c.Members[0].Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
	if err != nil || r.GetFailureTolerance() != 1 {
		t.Fatalf("healthy three-member cluster: tolerance %d (%v), want 1", r.GetFailureTolerance(), err)
	}
	c.Kill(c.Members[2])
	sawZero := false
	for {
		r, err := c.Members[0].Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
		if err == nil {
			if len(r.GetMembers()) == 3 && r.GetFailureTolerance() == 0 {
				sawZero = true
			}
			if len(r.GetMembers()) == 2 {
				if !sawZero {
					t.Fatal("the dead voter was removed before the tolerance was ever reported as 0")
				}
				if r.GetFailureTolerance() != 0 {
					t.Fatalf("two healthy voters: tolerance %d, want 0", r.GetFailureTolerance())
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("autopilot never removed the dead member: %v", r.GetMembers())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The two left still serve writes.
	create(ctx, t, c.Members[1], "after-cleanup")
}
