package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpHandler serves the probes and metrics. /livez and /healthz say the
// process and its raft node run; /readyz says this member may answer reads
// (load balancers route away when it cannot).
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	live := func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-s.node.Done():
			http.Error(w, "raft node stopped", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.readyErr(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	for route, h := range s.webhookHandlers() { // auth_service.go
		mux.Handle(route, s.closeWhileDraining(h))
	}
	for route, h := range s.rbac.handlers() { // rbac_service.go: SubjectAccessReview
		mux.Handle(route, s.closeWhileDraining(h))
	}
	// Probes and /metrics are exempt from admission (overload.go) and
	// public; every other route needs a caller (authz.go).
	return s.admission.httpHandler(s.authzHTTP(mux))
}

// closeWhileDraining makes every answer of next close its connection once
// Stop has begun (Connection: close; a GOAWAY on HTTP/2). A webhook caller
// keeps its connection alive, and through a Service that connection stays
// with this member until the listener closes; closed one answer at a time
// while the member still answers (--shutdown-delay), the callers reconnect
// to ready members before then.
func (s *Server) closeWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
