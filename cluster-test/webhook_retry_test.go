package clustertest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// webhookAnswers is how many TokenReviews member m answered with HTTP
// code (tokenstore_webhook_requests_total{endpoint="tokenreviews"}).
func webhookAnswers(t *testing.T, m *harness.Member, code int) float64 {
	t.Helper()
	resp, err := ctlCluster(t).HTTPClient().Get(m.HTTPURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "tokenstore_webhook_requests_total{") || !strings.Contains(line, `endpoint="tokenreviews"`) ||
			!strings.Contains(line, `code="`+strconv.Itoa(code)+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// roundRobin is a TCP forwarder standing for a Kubernetes Service: each
// new connection goes to the next backend and stays there, as kube-proxy
// picks an endpoint per connection (at random; here in a known order).
type roundRobin struct {
	ln       net.Listener
	backends []string
	next     atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startRoundRobin(t *testing.T, backends ...string) *roundRobin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &roundRobin{ln: ln, backends: backends}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			to := backends[int(rr.next.Add(1)-1)%len(backends)]
			go rr.forward(c, to)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		rr.mu.Lock()
		defer rr.mu.Unlock()
		for _, c := range rr.conns {
			c.Close()
		}
	})
	return rr
}

func (rr *roundRobin) forward(c net.Conn, to string) {
	b, err := net.Dial("tcp", to)
	if err != nil {
		c.Close()
		return
	}
	rr.mu.Lock()
	rr.conns = append(rr.conns, c, b)
	rr.mu.Unlock()
	go func() { _, _ = io.Copy(b, c); b.Close() }()
	_, _ = io.Copy(c, b)
	c.Close()
}

// connections is how many connections the forwarder has accepted.
func (rr *roundRobin) connections() int { return int(rr.next.Load()) }

// TestWebhookRetriesAMemberThatCannotAnswer cuts one member off its peers,
// so that it cannot confirm it is caught up and fails closed, and
// authenticates through kube-apiserver's own webhook authenticator:
//
//   - pointed at that member alone, the client retries its 503 (Retry-After)
//     and, when it gives up, reports tokenstore's reason rather than a
//     generic "unable to handle the request";
//   - through a Service (a forwarder spreading connections over that
//     member and a healthy one), the member's answer closes the
//     connection, the retry opens a new one, lands on the healthy member
//     and the user gets in.
func TestWebhookRetriesAMemberThatCannotAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := harness.New(bin, t.TempDir(), harness.Options{Size: 3, Proxies: true, Extra: []string{"--max-staleness", "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails(40))
		}
		c.Stop()
	})
	useCluster(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	healthy, cut := c.Members[0], c.Members[2]
	tok, err := healthy.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(ctx, t, c, tok.GetBearerToken())
	const path = "/apis/authentication.k8s.io/v1/tokenreviews"
	direct := kubeAuthenticator(t, webhookKubeconfig(t, "direct", cut.HTTPURL(path)), "v1")
	if got := ask(ctx, direct, tok.GetBearerToken(), nil); !got.OK {
		t.Fatalf("before the cut: %v", got)
	}

	for _, o := range c.Members {
		if o != cut {
			c.Net.Apply(harness.Rule{Link: harness.Link{From: cut.Name, To: o.Name}, Mode: harness.Blackhole},
				harness.Rule{Link: harness.Link{From: o.Name, To: cut.Name}, Mode: harness.Blackhole})
		}
	}
	defer c.Net.Heal()
	// Past --max-staleness the member's readiness goes false.
	for cut.Ready(ctx) {
		if ctx.Err() != nil {
			t.Fatal("the cut member stayed ready")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Pointed at the member alone: retried, then the reason.
	refused := webhookAnswers(t, cut, 503)
	start := time.Now()
	got := ask(ctx, direct, tok.GetBearerToken(), nil)
	took := time.Since(start)
	n := webhookAnswers(t, cut, 503) - refused
	t.Logf("a member that cannot answer: %d attempts in %v, then %q", int(n), took.Round(time.Millisecond), got.Err)
	if got.OK || !strings.Contains(got.Err, "member "+cut.Name+" cannot serve reads") || strings.Contains(got.Err, "unable to handle") {
		t.Errorf("from a member that cannot answer: %v, want an error naming the reason", got)
	}
	// client-go retries up to 10 times on Retry-After; the webhook's own
	// backoff does not repeat a 503.
	if n < 2 || n > 11 {
		t.Errorf("%v attempts at the member, want 2 to 11 (client-go's retries on Retry-After)", n)
	}

	// Through a Service: the first connection lands on the cut member.
	svc := startRoundRobin(t, cut.HTTPAddr, healthy.HTTPAddr)
	viaService := kubeAuthenticator(t, webhookKubeconfig(t, "service", "https://"+svc.ln.Addr().String()+path), "v1")
	refused, answered := webhookAnswers(t, cut, 503), webhookAnswers(t, healthy, 200)
	got = ask(ctx, viaService, tok.GetBearerToken(), nil)
	if !got.OK || got.User != "alice" {
		t.Errorf("through a Service with one member that cannot answer: %v, want alice", got)
	}
	if n := webhookAnswers(t, cut, 503) - refused; n != 1 {
		t.Errorf("the cut member refused %v times, want once (the retry goes elsewhere)", n)
	}
	if n := webhookAnswers(t, healthy, 200) - answered; n != 1 {
		t.Errorf("the healthy member answered %v times, want once", n)
	}
	if n := svc.connections(); n != 2 {
		t.Errorf("%d connections through the Service, want 2 (the refusal closes the first)", n)
	}
}
