package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// limitsFixture is a one-member cluster with one token, its HTTP handler
// served by newHTTPServer with limits l.
type limitsFixture struct {
	s      *Server
	conn   *grpc.ClientConn
	web    *httptest.Server
	bearer string
}

func newLimitsFixture(t *testing.T, l httpLimits) *limitsFixture {
	t.Helper()
	s, conn := startSolo(t, t.TempDir())
	web := httptest.NewUnstartedServer(nil)
	web.Config = newHTTPServer(s.httpHandler(), l)
	web.Start()
	t.Cleanup(web.Close)
	r, err := tokenstorev1.NewTokenServiceClient(conn).CreateToken(context.Background(),
		&tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	return &limitsFixture{s: s, conn: conn, web: web, bearer: r.GetBearerToken()}
}

// stillServes checks that the token still authenticates, over gRPC and
// through the TokenReview webhook: the refusals before lost nothing.
func (f *limitsFixture) stillServes(t *testing.T) {
	t.Helper()
	r, err := tokenstorev1.NewAuthServiceClient(f.conn).Authenticate(context.Background(), &tokenstorev1.AuthenticateRequest{Token: f.bearer})
	if err != nil || !r.GetAuthenticated() {
		t.Fatalf("after the refusals, gRPC authenticate: %v %v", r, err)
	}
	tr := reviewOver(t, f.web.URL, "/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1", f.bearer)
	if !tr.Status.Authenticated {
		t.Fatalf("after the refusals, TokenReview: %+v", tr.Status)
	}
}

// TestHTTPLimitsRefuseOversizeInput: headers past the limit get 431, a
// webhook body past --max-request-bytes gets 413 with the limit in words,
// on every webhook route; the member answers normally afterwards.
func TestHTTPLimitsRefuseOversizeInput(t *testing.T) {
	f := newLimitsFixture(t, defaultHTTPLimits)

	req, _ := http.NewRequest(http.MethodGet, f.web.URL+"/readyz", nil)
	req.Header.Set("X-Big", strings.Repeat("h", HTTPMaxHeaderBytes+4096))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: status %d, want 431", HTTPMaxHeaderBytes+4096, resp.StatusCode)
	}

	max := f.s.cfg.MaxRequestBytes
	big, _ := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
		"spec": map[string]any{"token": f.bearer, "audiences": []string{strings.Repeat("a", max)}}})
	for _, path := range []string{
		"/apis/authentication.k8s.io/v1/tokenreviews",
		"/apis/authentication.k8s.io/v1beta1/tokenreviews",
		"/v1/authenticate",
		"/apis/authorization.k8s.io/v1/subjectaccessreviews",
	} {
		resp, err := http.Post(f.web.URL+path, "application/json", bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "request body larger than") {
			t.Errorf("POST %s of %d bytes: %d %q, want 413 naming the limit", path, len(big), resp.StatusCode, body)
		}
		if strings.Contains(string(body), f.bearer) {
			t.Errorf("POST %s: the refusal repeats the token", path)
		}
	}
	f.stillServes(t)
}

// TestHTTPTimeoutsCloseSlowClients: a client that trickles its headers or
// its body is disconnected once the read timeouts pass, and the member keeps
// answering everyone else meanwhile.
func TestHTTPTimeoutsCloseSlowClients(t *testing.T) {
	l := defaultHTTPLimits
	l.readHeaderTimeout, l.readTimeout = 300*time.Millisecond, 600*time.Millisecond
	f := newLimitsFixture(t, l)
	addr := strings.TrimPrefix(f.web.URL, "http://")

	for _, c := range []struct{ name, partial string }{
		{"headers never finished", "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\nHost: x\r\n"},
		{"body never finished", "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"spec\":"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, c.partial); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Wait for the server to give up: the read ends (EOF, or the 400
		// net/http writes on a body read timeout) well before our own
		// deadline.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(bufio.NewReader(conn))
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: connection still open after %s", c.name, time.Since(start))
		}
	}
	f.stillServes(t)
}

// TestGRPCRequestLimit: a request past --max-request-bytes is refused with
// RESOURCE_EXHAUSTED naming the size, and nothing of it is stored.
func TestGRPCRequestLimit(t *testing.T) {
	f := newLimitsFixture(t, defaultHTTPLimits)
	tokens := tokenstorev1.NewTokenServiceClient(f.conn)
	ctx := context.Background()
	before, err := tokens.ListTokens(ctx, &tokenstorev1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{Username: "bob"}, Description: strings.Repeat("d", f.s.cfg.MaxRequestBytes)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "larger than max") {
		t.Fatalf("oversize create: %v, want RESOURCE_EXHAUSTED naming the limit", err)
	}
	list, err := tokens.ListTokens(ctx, &tokenstorev1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n, want := len(list.GetTokens()), len(before.GetTokens()); n != want {
		t.Errorf("after the refused create: %d tokens, want %d (as before it)", n, want)
	}
	f.stillServes(t)
}

// TestOversizeBearerIsRefusedBeforeHashing: a token past token.MaxBearerLen
// whose id is a stored token's is refused as malformed (oversize), not as
// a wrong secret: it never reached the lookup or the hash.
func TestOversizeBearerIsRefusedBeforeHashing(t *testing.T) {
	f := newLimitsFixture(t, defaultHTTPLimits)
	long := f.bearer + strings.Repeat("a", token.MaxBearerLen)
	r, err := tokenstorev1.NewAuthServiceClient(f.conn).Authenticate(context.Background(), &tokenstorev1.AuthenticateRequest{Token: long})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetAuthenticated() || r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_MALFORMED ||
		!strings.Contains(r.GetMessage(), "longer than 512 bytes") {
		t.Errorf("oversize token: %v, want MALFORMED \"longer than 512 bytes\"", r)
	}
	tr := reviewOver(t, f.web.URL, "/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1", long)
	if tr.Status.Authenticated || !strings.Contains(tr.Status.Error, "longer than 512 bytes") {
		t.Errorf("oversize token over TokenReview: %+v", tr.Status)
	}
	f.stillServes(t)
}

// TestUnaryCallsWithoutDeadlineGetOne: the interceptor gives a call that
// brings no deadline --request-timeout, and leaves a caller's own alone.
func TestUnaryCallsWithoutDeadlineGetOne(t *testing.T) {
	s := &Server{cfg: Config{RequestTimeout: 7 * time.Second}}
	deadlineOf := func(ctx context.Context) (time.Duration, bool) {
		var left time.Duration
		var ok bool
		_, _ = s.deadlineInterceptor(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
			var d time.Time
			d, ok = ctx.Deadline()
			left = time.Until(d)
			return nil, nil
		})
		return left, ok
	}
	if left, ok := deadlineOf(context.Background()); !ok || left <= 4*time.Second || left > 7*time.Second {
		t.Errorf("call without deadline: deadline in %s (set %v), want --request-timeout 7s", left, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if left, ok := deadlineOf(ctx); !ok || left <= 50*time.Second {
		t.Errorf("call with a 1m deadline: deadline in %s, want the caller's", left)
	}
}

// TestLinearizableAuthenticateWithoutDeadlineIsBounded: Authenticate and
// Authorize get no deadline from the interceptor (they wait only in the
// read gate), so the read gate must bound a linearizable read itself. A
// member that can never reach quorum (its only peer does not exist) must
// answer a linearizable Authenticate that brought no deadline within about
// --request-timeout, not after raft's own, much longer, bound.
func TestLinearizableAuthenticateWithoutDeadlineIsBounded(t *testing.T) {
	if !readGateMethods[tokenstorev1.AuthService_Authenticate_FullMethodName] {
		t.Fatal("Authenticate is expected among readGateMethods")
	}
	c := testConfig(t.TempDir())
	c.InitialCluster = "solo=127.0.0.1:1,ghost=127.0.0.1:2"
	c.RequestTimeout = 300 * time.Millisecond
	// A read round gives up after an election timeout (ten ticks); with
	// one-second ticks that is 10s, so only --request-timeout can end the
	// wait within the 5s asserted below.
	c.TickInterval = time.Second
	s, err := Start(context.Background(), c, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := grpc.NewClient(s.ClientAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id, _ := token.NewID(time.Now())
	secret, _ := token.NewSecret()
	// The test's own bound, far above --request-timeout, only so a
	// failure does not hang the run; the request carries no deadline.
	done := make(chan error, 1)
	t0 := time.Now()
	go func() {
		_, err := tokenstorev1.NewAuthServiceClient(conn).Authenticate(context.Background(), &tokenstorev1.AuthenticateRequest{
			Token: token.Bearer(id, secret), Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("linearizable read without quorum answered")
		}
		t.Logf("after %v: %v", time.Since(t0), err)
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("answered after %v, want about --request-timeout (300ms)", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("linearizable Authenticate without deadline still waiting after 20s; --request-timeout is 300ms")
	}
}
