package campaign

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// Cluster is a harness cluster whose membership may change during a run
// (a replaced member is retired: it stays in harness.Cluster.Members for
// its logs and data, but clients and checks no longer use it).
type Cluster struct {
	*harness.Cluster
	mu      sync.Mutex
	retired map[*harness.Member]bool
	next    int // number of the next new member's name
	flags   map[string]bool
}

// HasFlag is harness.Cluster.HasFlag, asked once per flag.
func (c *Cluster) HasFlag(flag string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags == nil {
		c.flags = map[string]bool{}
	}
	if v, ok := c.flags[flag]; ok {
		return v
	}
	v := c.Cluster.HasFlag(flag)
	c.flags[flag] = v
	return v
}

func newCluster(h *harness.Cluster) *Cluster {
	return &Cluster{Cluster: h, retired: map[*harness.Member]bool{}, next: len(h.Members) + 1}
}

// Current returns the members of the cluster now, in name order.
func (c *Cluster) Current() []*harness.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*harness.Member
	for _, m := range c.Members {
		if !c.retired[m] {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Retire takes m out of the current members.
func (c *Cluster) Retire(m *harness.Member) {
	c.mu.Lock()
	c.retired[m] = true
	c.mu.Unlock()
}

// AddMember adds a new member through via (ClusterService.AddMember) and
// starts it with --initial-cluster-state existing.
func (c *Cluster) AddMember(ctx context.Context, via *harness.Member) (*harness.Member, error) {
	c.mu.Lock()
	name := fmt.Sprintf("n%d", c.next)
	c.next++
	c.mu.Unlock()
	var initial string
	for _, m := range c.Current() {
		initial += m.Name + "=" + m.AdvertisePeer + ","
	}
	m, err := c.Cluster.NewMember(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.retired[m] = true // not a member until it runs
	c.mu.Unlock()
	// The flags after Cluster.Extra win: this member joins instead of
	// bootstrapping.
	m.Flags = []string{"--initial-cluster", initial + name + "=" + m.AdvertisePeer, "--initial-cluster-state", "existing"}
	// AddMember is idempotent: retry through any member until it answers,
	// then make sure the membership has the new member.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		ask := via
		if i > 0 {
			ms := c.Current()
			ask = ms[i%len(ms)]
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = ask.Cluster.AddMember(actx, &tokenstorev1.AddMemberRequest{Name: name, PeerAddress: m.AdvertisePeer})
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
	if err != nil {
		names, merr := c.Membership(ctx)
		if merr != nil || !names[name] {
			return nil, fmt.Errorf("add member %s: %w", name, err)
		}
	}
	if err := c.Start(m); err != nil {
		return nil, err
	}
	c.mu.Lock()
	delete(c.retired, m)
	c.mu.Unlock()
	return m, nil
}

// Membership returns the names in the raft membership as the leader has
// applied it.
func (c *Cluster) Membership(ctx context.Context) (map[string]bool, error) {
	l := c.Leader(ctx)
	if l == nil {
		return nil, fmt.Errorf("no leader to ask for the membership")
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := l.Cluster.ListMembers(qctx, &tokenstorev1.ListMembersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list members at %s: %w", l.Name, err)
	}
	out := map[string]bool{}
	for _, m := range r.GetMembers() {
		out[m.GetName()] = true
	}
	return out, nil
}

// Reconcile makes the current members what the raft membership says:
// members it no longer has are stopped and retired (a removal whose call
// timed out but took effect), members it has that never started are
// started (an add that timed out but took effect). It returns the names
// retired, and "+name" for those started.
func (c *Cluster) Reconcile(ctx context.Context) ([]string, error) {
	names, err := c.Membership(ctx)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, m := range c.Current() {
		if !names[m.Name] {
			m.ExpectExit(true)
			c.Kill(m)
			c.Retire(m)
			gone = append(gone, m.Name)
		}
	}
	// An add that timed out but took effect: start the member.
	c.mu.Lock()
	var late []*harness.Member
	for _, m := range c.Members {
		if c.retired[m] && names[m.Name] && !m.Running() && len(m.Flags) > 0 {
			late = append(late, m)
		}
	}
	c.mu.Unlock()
	for _, m := range late {
		if err := c.Start(m); err != nil {
			return gone, err
		}
		c.mu.Lock()
		delete(c.retired, m)
		c.mu.Unlock()
		gone = append(gone, "+"+m.Name)
	}
	return gone, nil
}

// Leader returns the member that the highest term reported leads, asking
// every running member that is not paused; nil when none is known within
// two seconds.
func (c *Cluster) Leader(ctx context.Context) *harness.Member {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if l := c.leaderOnce(ctx); l != nil {
			return l
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func (c *Cluster) leaderOnce(ctx context.Context) *harness.Member {
	type answer struct {
		leader string
		term   uint64
	}
	ms := c.Current()
	answers := make([]answer, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if !m.Running() || m.Paused() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Status asks every member for a second at most.
			qctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			st, err := m.Cluster.Status(qctx, &tokenstorev1.StatusRequest{})
			if err != nil || st.GetLeaderName() == "" {
				return
			}
			for _, ms := range st.GetMembers() {
				if ms.GetName() == m.Name {
					answers[i] = answer{st.GetLeaderName(), ms.GetTerm()}
				}
			}
		}()
	}
	wg.Wait()
	var best answer
	for _, a := range answers {
		if a.leader != "" && a.term >= best.term {
			best = a
		}
	}
	for _, m := range ms {
		if m.Name == best.leader && m.Running() {
			return m
		}
	}
	return nil
}
