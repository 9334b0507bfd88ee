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
		mux.Handle(route, h)
	}
	for route, h := range s.rbac.handlers() { // rbac_service.go: SubjectAccessReview
		mux.Handle(route, h)
	}
	// Probes and /metrics are exempt from admission (overload.go) and
	// public; every other route needs a caller (authz.go).
	return s.admission.httpHandler(s.authzHTTP(mux))
}
