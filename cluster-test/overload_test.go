package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// overloadPlan is one overload scenario: a cluster whose leader admits
// maxInflight client requests, a measured baseline at that concurrency,
// then factor times the clients, each retrying at once when refused (the
// avalanche: no client backs off), then the baseline load again.
type overloadPlan struct {
	maxInflight int
	factor      int
	baseline    time.Duration
	overload    time.Duration
	recovery    time.Duration
	// Bounds the checks hold the run to.
	maxAdmittedP99 time.Duration
	minRecovery    float64 // recovered throughput / baseline throughput
	maxRSSGrowth   int64   // bytes over the baseline's peak
}

// TestOverloadShedsAndRecovers is the short overload test run by make test:
// ten times the clients the leader admits, for a few seconds. The 30 s run
// the issue asks for is TestOverloadTenTimesCapacityFor30s (clustertest tag).
func TestOverloadShedsAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and saturates the machine for several seconds")
	}
	runOverload(t, overloadPlan{
		maxInflight: 16, factor: 10,
		baseline: 2 * time.Second, overload: 6 * time.Second, recovery: 2 * time.Second,
		maxAdmittedP99: 2 * time.Second, minRecovery: 0.5, maxRSSGrowth: 256 << 20,
	})
}

// loadStats is what one load phase saw.
type loadStats struct {
	elapsed                  time.Duration
	ok, rejected, wrong, err atomic.Int64
	// rejectedHTTP counts 429s, all of which carried a Retry-After.
	rejectedHTTP, missingRetryAfter atomic.Int64
	mu                              sync.Mutex
	lat                             []time.Duration // admitted and answered
	samples                         []string
}

func (s *loadStats) note(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 5 && !slices.Contains(s.samples, msg) {
		s.samples = append(s.samples, msg)
	}
}

func (s *loadStats) rate() float64 { return float64(s.ok.Load()) / s.elapsed.Seconds() }

func (s *loadStats) p99() time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	return s.lat[min(len(s.lat)-1, len(s.lat)*99/100)]
}

func (s *loadStats) String() string {
	return fmt.Sprintf("%d ok (%.0f/s, p99 %v), %d refused (%d over HTTP), %d wrong, %d errors %v",
		s.ok.Load(), s.rate(), s.p99().Round(time.Microsecond), s.rejected.Load(), s.rejectedHTTP.Load(), s.wrong.Load(), s.err.Load(), s.samples)
}

// overloadLoad drives clients closed-loop clients at m for d. Every tenth
// client sends Rancher webhook requests over HTTP, the rest gRPC
// Authenticate, alternating bounded and linearizable reads (linearizable
// reads wait on raft, so requests stay in flight as under real load). A
// refused request is retried at once.
func overloadLoad(ctx context.Context, m *harness.Member, conns []*grpc.ClientConn, hc *http.Client, bearers []string, clients int, d time.Duration) *loadStats {
	st := &loadStats{}
	end := time.Now().Add(d)
	rctx, cancel := context.WithDeadline(ctx, end.Add(10*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			auth := tokenstorev1.NewAuthServiceClient(conns[w%len(conns)])
			var lat []time.Duration
			for i := 0; time.Now().Before(end) && rctx.Err() == nil; i++ {
				bearer := bearers[(w*31+i)%len(bearers)]
				t0 := time.Now()
				var ok bool
				if w%10 == 9 {
					ok = httpAuthenticate(rctx, hc, m, bearer, st)
				} else {
					c := tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED
					if i%2 == 1 {
						c = tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
					}
					r, err := auth.Authenticate(rctx, &tokenstorev1.AuthenticateRequest{Token: bearer, Consistency: c})
					switch {
					case status.Code(err) == codes.ResourceExhausted:
						st.rejected.Add(1)
					case err != nil:
						st.err.Add(1)
						st.note(err.Error())
					case !r.GetAuthenticated():
						st.wrong.Add(1)
						st.note("refused: " + r.GetReason().String())
					default:
						ok = true
					}
				}
				if ok {
					st.ok.Add(1)
					lat = append(lat, time.Since(t0))
				}
			}
			st.mu.Lock()
			st.lat = append(st.lat, lat...)
			st.mu.Unlock()
		}(w)
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st
}

// httpAuthenticate sends one Rancher kube-api-auth review and tallies a
// 429 (which must carry Retry-After); it reports an authenticated answer.
func httpAuthenticate(ctx context.Context, hc *http.Client, m *harness.Member, bearer string, st *loadStats) bool {
	body := `{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"` + bearer + `"}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.HTTPURL("/v1/authenticate"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		st.err.Add(1)
		st.note("http: " + err.Error())
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		st.rejected.Add(1)
		st.rejectedHTTP.Add(1)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			st.missingRetryAfter.Add(1)
		}
		return false
	case resp.StatusCode != http.StatusOK:
		st.err.Add(1)
		st.note(fmt.Sprintf("http %d: %s", resp.StatusCode, strings.TrimSpace(buf.String())))
		return false
	case !strings.Contains(buf.String(), `"authenticated":true`):
		st.wrong.Add(1)
		st.note("http refused: " + buf.String())
		return false
	}
	return true
}

// probeStats is what the health probes saw during the overload.
type probeStats struct {
	n, failed int
	worst     time.Duration
	samples   []string
}

// probeHealth polls m's /readyz and gRPC health until stop is closed, each
// with a one-second timeout, as a load balancer would.
func probeHealth(m *harness.Member, web *http.Client, conn *grpc.ClientConn, stop <-chan struct{}) *probeStats {
	ps := &probeStats{}
	hc := healthpb.NewHealthClient(conn)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return ps
		case <-t.C:
		}
		t0 := time.Now()
		resp, err := web.Get(m.HTTPURL("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("/readyz %d", resp.StatusCode)
			}
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var r *healthpb.HealthCheckResponse
			r, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err == nil && r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("health %v", r.GetStatus())
			}
		}
		ps.n++
		ps.worst = max(ps.worst, time.Since(t0))
		if err != nil {
			ps.failed++
			if len(ps.samples) < 5 {
				ps.samples = append(ps.samples, err.Error())
			}
		}
	}
}

// rssBytes is a process's resident memory from /proc.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// watchRSS samples pid's resident memory until stop is closed and returns
// the peak.
func watchRSS(pid int, stop <-chan struct{}) int64 {
	var peak int64
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		peak = max(peak, rssBytes(pid))
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// leaderAndTerms returns the leader's name and every member's term. Equal
// answers before and after the overload mean no election happened in
// between: with PreVote a member that only suspects the leader does not
// raise its term.
func leaderAndTerms(ctx context.Context, t *testing.T, c *harness.Cluster) (string, map[string]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Cluster.Status(ctx, &tokenstorev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	terms := map[string]uint64{}
	for _, m := range st.GetMembers() {
		terms[m.GetName()] = m.GetTerm()
	}
	return st.GetLeaderName(), terms
}

func runOverload(t *testing.T, p overloadPlan) {
	c := newCluster(t, "--max-inflight", strconv.Itoa(p.maxInflight))
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(wctx)
	if err != nil {
		t.Fatal(err)
	}
	var bearers []string
	for i := 0; i < 64; i++ {
		bearers = append(bearers, create(wctx, t, leader, fmt.Sprintf("overload-%d", i)).GetBearerToken())
	}
	var conns []*grpc.ClientConn
	for i := 0; i < 4; i++ {
		conn, err := leader.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	clients := p.maxInflight * p.factor
	hc := c.HTTPClient()
	hc.Timeout = 10 * time.Second
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost, hc.Transport.(*http.Transport).MaxIdleConns = clients, clients
	defer hc.CloseIdleConnections()
	name0, terms0 := leaderAndTerms(ctx, t, c)

	stopRSS := make(chan struct{})
	rssc := make(chan int64, 1)
	go func() { rssc <- watchRSS(leader.Pid(), stopRSS) }()
	base := overloadLoad(ctx, leader, conns, hc, bearers, p.maxInflight, p.baseline)
	close(stopRSS)
	baseRSS := <-rssc
	t.Logf("baseline, %d clients (= --max-inflight): %v; peak RSS %d MiB", p.maxInflight, base, baseRSS>>20)

	stop := make(chan struct{})
	probec := make(chan *probeStats, 1)
	web := c.HTTPClient()
	web.Timeout = time.Second
	go func() { probec <- probeHealth(leader, web, conns[0], stop) }()
	go func() { rssc <- watchRSS(leader.Pid(), stop) }()
	over := overloadLoad(ctx, leader, conns, hc, bearers, clients, p.overload)
	close(stop)
	probes, overRSS := <-probec, <-rssc
	t.Logf("overload, %d clients retrying at once: %v; peak RSS %d MiB", clients, over, overRSS>>20)
	t.Logf("health probes during overload: %d, %d failed, slowest %v %v", probes.n, probes.failed, probes.worst.Round(time.Microsecond), probes.samples)

	rec := overloadLoad(ctx, leader, conns, hc, bearers, p.maxInflight, p.recovery)
	t.Logf("recovery, %d clients: %v (%.0f%% of baseline)", p.maxInflight, rec, 100*rec.rate()/base.rate())
	name1, terms1 := leaderAndTerms(ctx, t, c)

	for _, s := range []*loadStats{base, over, rec} {
		if s.wrong.Load() > 0 || s.err.Load() > 0 {
			t.Errorf("answers other than success or RESOURCE_EXHAUSTED/429: %v", s)
		}
	}
	if over.rejected.Load() == 0 {
		t.Errorf("no request was refused at %d times the admitted concurrency", p.factor)
	}
	if over.rejectedHTTP.Load() == 0 {
		t.Errorf("no webhook request was refused with 429")
	}
	if n := over.missingRetryAfter.Load(); n > 0 {
		t.Errorf("%d 429 answers without a Retry-After", n)
	}
	if over.ok.Load() == 0 || over.p99() > p.maxAdmittedP99 {
		t.Errorf("admitted requests under overload: %d, p99 %v; want some, p99 <= %v", over.ok.Load(), over.p99(), p.maxAdmittedP99)
	}
	if probes.failed > 0 || probes.n == 0 {
		t.Errorf("health probes under overload: %d of %d failed %v", probes.failed, probes.n, probes.samples)
	}
	if overRSS > baseRSS+p.maxRSSGrowth {
		t.Errorf("leader's resident memory grew from %d MiB to %d MiB under overload", baseRSS>>20, overRSS>>20)
	}
	if name1 != name0 || !mapsEqual(terms0, terms1) {
		t.Errorf("leadership changed under client overload: leader %s terms %v before, leader %s terms %v after", name0, terms0, name1, terms1)
	}
	for _, m := range c.Members {
		if cr := m.Crashes(); len(cr) > 0 || !m.Running() {
			t.Errorf("%s did not survive: running %v, %v", m.Name, m.Running(), cr)
		}
	}
	if rec.rate() < p.minRecovery*base.rate() {
		t.Errorf("throughput after the overload %.0f/s, want at least %.0f%% of the baseline %.0f/s", rec.rate(), 100*p.minRecovery, base.rate())
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
