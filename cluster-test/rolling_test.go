package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// rollClient is a client behind a load balancer: it asks its home member
// and, when that member is down or refuses to serve (UNAVAILABLE: connection
// refused or reset, shutting down, not caught up) or sheds load
// (RESOURCE_EXHAUSTED), asks the next one, as a Service or kube-apiserver's
// webhook retry would. Only an answer that refuses a valid token, an error
// of any other kind, or no member answering after two rounds is a failure.
type rollClient struct {
	members  []*harness.Member
	ok       atomic.Int64
	retried  atomic.Int64
	mu       sync.Mutex
	failures []string
	// servedBy counts answers by member name, to see every member serve.
	servedBy sync.Map // string -> *atomic.Int64
}

func (rc *rollClient) fail(format string, args ...any) {
	rc.mu.Lock()
	rc.failures = append(rc.failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	rc.mu.Unlock()
}

// authenticate asks home first, then the others in turn.
func (rc *rollClient) authenticate(ctx context.Context, home int, bearer string) {
	var errs []string
	for attempt := 0; attempt < 2*len(rc.members); attempt++ {
		m := rc.members[(home+attempt)%len(rc.members)]
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := m.Auth.Authenticate(actx, &tokenstorev1.AuthenticateRequest{Token: bearer})
		cancel()
		if err == nil {
			if !r.GetAuthenticated() {
				rc.fail("%s refused a valid token: %v %s (revision %d)", m.Name, r.GetReason(), r.GetMessage(), r.GetHeader().GetRevision())
				return
			}
			rc.ok.Add(1)
			if attempt > 0 {
				rc.retried.Add(1)
			}
			n, _ := rc.servedBy.LoadOrStore(r.GetHeader().GetMember(), new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return
		}
		if ctx.Err() != nil {
			return // the test is over
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted:
			errs = append(errs, m.Name+": "+err.Error())
			if attempt >= len(rc.members)-1 {
				time.Sleep(50 * time.Millisecond) // every member tried once: back off a little
			}
			continue
		}
		rc.fail("%s: %v", m.Name, err)
		return
	}
	rc.fail("no member answered: %s", strings.Join(errs, "; "))
}

// TestRollingRestart restarts every member of a gossip-joined cluster (as a
// StatefulSet runs it) one at a time with SIGTERM, highest ordinal first, as
// a StatefulSet rolling update does: the next member is stopped only once
// the restarted one is ready again. Clients authenticate at every member
// throughout (at the restarting one while it is up) and writes continue.
// No authentication may fail, a leader that is stopped must hand leadership
// over instead of leaving the cluster to an election timeout, and every
// acknowledged write must survive.
func TestRollingRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	for _, m := range c.Members {
		m.Flags = append(m.Flags, "--shutdown-delay", "300ms")
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitVoters(ctx, t, c.Members[0], "n1", "n2", "n3")

	// Tokens that every member has applied before the roll begins: a
	// bounded read may lag a token created a moment ago elsewhere, which is
	// a property of bounded reads, not of restarts.
	var bearers []string
	for i := 0; i < 30; i++ {
		bearers = append(bearers, create(ctx, t, c.Members[i%3], fmt.Sprintf("roll%d", i)).GetBearerToken())
	}
	for _, m := range c.Members {
		if v := verify(ctx, t, m, bearers[len(bearers)-1], tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
			t.Fatalf("%s refuses a token before the roll: %v", m.Name, v.GetReason())
		}
	}

	rc := &rollClient{members: c.Members}
	load, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for home := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(home), 11))
			for load.Err() == nil {
				rc.authenticate(load, home, bearers[rng.IntN(len(bearers))])
				time.Sleep(time.Millisecond) // leave the members CPU for raft
			}
		}()
	}
	// Writes go on during the roll, to the members in turn, moving on when
	// one is down; every acknowledged one must be there at the end.
	var ackedMu sync.Mutex
	var acked []string
	var writeErrs atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; load.Err() == nil; i++ {
			m := c.Members[i%len(c.Members)]
			wctx, cancel := context.WithTimeout(load, 5*time.Second)
			r, err := m.Tokens.CreateToken(wctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: fmt.Sprintf("w%d", i)}})
			cancel()
			if err != nil {
				writeErrs.Add(1)
				continue
			}
			ackedMu.Lock()
			acked = append(acked, r.GetToken().GetId())
			ackedMu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()

	time.Sleep(500 * time.Millisecond) // load running before the first restart
	transfers := 0
	for i := len(c.Members) - 1; i >= 0; i-- {
		m := c.Members[i]
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.Terminate(m)
		stopped := time.Since(start)
		if leader == m {
			b, err := os.ReadFile(m.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "handed leadership over before shutdown") {
				t.Errorf("%s was leader and stopped without handing leadership over", m.Name)
			}
			transfers++
		}
		if crashes := m.Crashes(); len(crashes) > 0 {
			t.Fatalf("%s did not exit cleanly: %v", m.Name, crashes)
		}
		if err := c.Start(m); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		// Like a readiness gate: the member answers before the next one
		// goes down.
		for {
			r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearers[0]})
			if err == nil && r.GetAuthenticated() {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never answered after its restart: %v", m.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s (leader: %v) stopped in %v and was back serving %v after the signal", m.Name, leader == m, stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond) // load on the fully restarted cluster
	stopLoad()
	wg.Wait()

	rc.mu.Lock()
	failures := rc.failures
	rc.mu.Unlock()
	served := map[string]int64{}
	rc.servedBy.Range(func(k, v any) bool { served[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d authentications (%d answered by another member after a retry), by member %v; %d writes acknowledged, %d write attempts failed and moved on",
		rc.ok.Load(), rc.retried.Load(), served, len(acked), writeErrs.Load())
	if len(failures) > 0 {
		t.Fatalf("%d failed authentications during the rolling restart, first: %v", len(failures), failures[:min(len(failures), 5)])
	}
	if transfers == 0 {
		t.Error("no member was leader when it was stopped: the roll never exercised the leadership hand-over")
	}
	for _, m := range c.Members {
		if served[m.Name] == 0 {
			t.Errorf("%s answered no authentication", m.Name)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged during the roll")
	}
	for _, id := range acked {
		if _, err := c.Members[0].Tokens.GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil {
			t.Fatalf("acknowledged token %s lost in the roll: %v", id, err)
		}
	}
	sameState(ctx, t, c)
}
