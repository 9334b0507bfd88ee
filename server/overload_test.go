package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func newTestAdmission(limit int) (*admission, *prometheus.CounterVec) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rejected_total"}, []string{"listener"})
	return newAdmission(limit, time.Second, vec), vec
}

// TestAdmissionRefusesBeyondTheLimitAtOnce fills the budget with requests
// that block, and checks that the next one is refused immediately with a
// retry hint, that health checks still pass, and that a freed slot admits
// again.
func TestAdmissionRefusesBeyondTheLimitAtOnce(t *testing.T) {
	a, vec := newTestAdmission(2)
	block := make(chan struct{})
	started := make(chan struct{}, 2)
	slow := func(ctx context.Context, req any) (any, error) {
		started <- struct{}{}
		<-block
		return "slow", nil
	}
	fast := func(ctx context.Context, req any) (any, error) { return "fast", nil }
	auth := &grpc.UnaryServerInfo{FullMethod: "/tokenstore.v1.AuthService/Authenticate"}
	hc := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}

	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.unaryInterceptor(context.Background(), nil, auth, slow); err != nil {
				t.Errorf("admitted request: %v", err)
			}
		}()
	}
	<-started
	<-started

	t0 := time.Now()
	_, err := a.unaryInterceptor(context.Background(), nil, auth, fast)
	if d := time.Since(t0); d > 100*time.Millisecond {
		t.Errorf("refusal took %v; it must not wait for a slot", d)
	}
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("request beyond the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	var hint *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint == nil || hint.GetRetryDelay().AsDuration() < 500*time.Millisecond || hint.GetRetryDelay().AsDuration() > 1500*time.Millisecond {
		t.Errorf("retry hint %v, want RetryInfo of 0.5s to 1.5s", hint)
	}
	if r, err := a.unaryInterceptor(context.Background(), nil, hc, fast); err != nil || r != "fast" {
		t.Errorf("health check under overload: %v, %v", r, err)
	}
	if got := counterValue(t, vec.WithLabelValues("grpc")); got != 1 {
		t.Errorf("rejections counted %v, want 1", got)
	}

	close(block)
	wg.Wait()
	if r, err := a.unaryInterceptor(context.Background(), nil, auth, fast); err != nil || r != "fast" {
		t.Errorf("after the slow requests finished: %v, %v", r, err)
	}
	if n := a.inflight.Load(); n != 0 {
		t.Errorf("%d slots still taken after every request finished", n)
	}
}

// TestAdmissionOverHTTPAnswers429WithRetryAfter fills the budget through
// the HTTP wrapper and checks the refusal and that probes stay exempt.
func TestAdmissionOverHTTPAnswers429WithRetryAfter(t *testing.T) {
	a, vec := newTestAdmission(1)
	block := make(chan struct{})
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/authenticate", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-block
	})
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/metrics"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {})
	}
	srv := httptest.NewServer(a.httpHandler(mux))
	defer srv.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(srv.URL+"/v1/authenticate", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	resp, err := http.Post(srv.URL+"/v1/authenticate", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", resp.Header.Get("Retry-After"))
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s under overload: %d, want 200", p, resp.StatusCode)
		}
	}
	if got := counterValue(t, vec.WithLabelValues("http")); got != 1 {
		t.Errorf("rejections counted %v, want 1", got)
	}
	close(block)
	<-done
}

// TestServerShedsClientRequestsButNotHealth checks the wiring in a real
// member: an open streaming call (server reflection) holds the only slot
// of --max-inflight 1, so Authenticate is refused with a pushback trailer
// and the webhook with 429, while the health service and /readyz answer.
func TestServerShedsClientRequestsButNotHealth(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxInflight = 1
	s, err := Start(context.Background(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(s.ClientAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	web := httptest.NewServer(s.httpHandler())
	defer web.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("member never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	sctx, scancel := context.WithCancel(ctx)
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("reflection: %v", err)
	}
	// The reflection handler now waits for the next request, holding the slot.

	var trailer metadata.MD
	_, err = tokenstorev1.NewAuthServiceClient(conn).Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: "x"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Authenticate with the budget full: %v, want RESOURCE_EXHAUSTED", err)
	}
	if p := trailer.Get("grpc-retry-pushback-ms"); len(p) != 1 {
		t.Errorf("pushback trailer %v, want one value", p)
	}
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health under overload: %v, %v", r, err)
	}
	resp, err := http.Post(web.URL+"/v1/authenticate", "application/json", strings.NewReader(`{"spec":{"token":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("webhook with the budget full: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The body is the metav1.Status kube-apiserver's client decodes.
	if !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), `"reason":"TooManyRequests"`) ||
		!strings.Contains(string(body), "--max-inflight") {
		t.Errorf("webhook with the budget full: body %s, want a TooManyRequests Status naming --max-inflight", body)
	}
	resp, err = http.Get(web.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz under overload: %d", resp.StatusCode)
	}

	scancel()
	// The slot is released when the stream's handler returns.
	for {
		r, err := tokenstorev1.NewAuthServiceClient(conn).Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: "x"})
		if err == nil {
			if r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_MALFORMED {
				t.Errorf("malformed token answered %v", r.GetReason())
			}
			break
		}
		if status.Code(err) != codes.ResourceExhausted || ctx.Err() != nil {
			t.Fatalf("after the stream closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := counterValue(t, s.metrics.rejected.WithLabelValues("grpc")); got < 1 {
		t.Errorf("grpc rejections counted %v", got)
	}
	if got := counterValue(t, s.metrics.rejected.WithLabelValues("http")); got != 1 {
		t.Errorf("http rejections counted %v, want 1", got)
	}
}
