package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestStopDrainsBeforeClosing: once Stop begins, /readyz and the gRPC
// health status say "not ready" at once, while requests are still answered
// for --shutdown-delay (webhook answers closing their connections); only
// then do the listeners close.
func TestStopDrainsBeforeClosing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ShutdownDelay = 800 * time.Millisecond
	s, err := Start(context.Background(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conn := dialAdmin(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		s.httpHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	for code, _ := readyz(); code != http.StatusOK; code, _ = readyz() {
		if ctx.Err() != nil {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := tokenstorev1.NewTokenServiceClient(conn).CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "d"}})
	if err != nil {
		t.Fatal(err)
	}

	review := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.httpHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/apis/authentication.k8s.io/v1/tokenreviews",
			strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"`+tok.GetBearerToken()+`"}}`)))
		return rec
	}
	if rec := review(); rec.Code != http.StatusOK || rec.Header().Get("Connection") != "" {
		t.Errorf("TokenReview before Stop: %d, Connection %q; want 200 keeping the connection", rec.Code, rec.Header().Get("Connection"))
	}

	stopped := make(chan struct{})
	start := time.Now()
	go func() { s.Stop(); close(stopped) }()
	for !s.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining: %d %q, want 503 shutting down", code, body)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health while draining: %v %v, want NOT_SERVING", h.GetStatus(), err)
	}
	r, err := tokenstorev1.NewAuthServiceClient(conn).Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok.GetBearerToken()})
	if err != nil || !r.GetAuthenticated() {
		t.Errorf("authentication while draining: %v %v, want it answered", r.GetReason(), err)
	}
	// Webhook answers go on, each closing its connection so that callers
	// reconnect to a ready member before the listener closes.
	if rec := review(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"authenticated":true`) || rec.Header().Get("Connection") != "close" {
		t.Errorf("TokenReview while draining: %d %s, Connection %q; want 200 authenticated with Connection: close", rec.Code, rec.Body, rec.Header().Get("Connection"))
	}
	select {
	case <-stopped:
		t.Fatalf("Stop returned after %v, before --shutdown-delay", time.Since(start))
	default:
	}
	<-stopped
	if d := time.Since(start); d < cfg.ShutdownDelay {
		t.Errorf("stopped after %v, --shutdown-delay is %v", d, cfg.ShutdownDelay)
	}
}
