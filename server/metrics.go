package server

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/lastused"
)

// metrics are one member's Prometheus metrics, in a registry of its own (no
// global state, so several members can run in one test process).
type metrics struct {
	reg         *prometheus.Registry
	authByRes   []prometheus.Counter // indexed by DenyReason; 0 = authenticated
	unavailable prometheus.Counter
	proposals   *prometheus.CounterVec
	// rejected counts client requests refused by admission (overload.go),
	// by listener.
	rejected *prometheus.CounterVec
	authx    *authMetrics // auth_service.go

	lastUsedPerEntry prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	authVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_authentications_total", Help: "Authentications answered, by result.",
	}, []string{"result"})
	m.reg.MustRegister(authVec)
	for i := 0; i < len(tokenstorev1.DenyReason_name); i++ {
		name := "authenticated"
		if i > 0 {
			name = strings.ToLower(strings.TrimPrefix(tokenstorev1.DenyReason(i).String(), "DENY_REASON_"))
		}
		m.authByRes = append(m.authByRes, authVec.WithLabelValues(name))
	}
	m.unavailable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenstore_reads_refused_total", Help: "Reads refused with UNAVAILABLE because this member could not confirm it is caught up.",
	})
	m.proposals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_proposals_total", Help: "Writes proposed through raft by this member, by outcome.",
	}, []string{"outcome"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_requests_rejected_total", Help: "Client requests refused at once (RESOURCE_EXHAUSTED / HTTP 429) because --max-inflight requests were in flight, by listener (grpc, http).",
	}, []string{"listener"})
	m.reg.MustRegister(m.unavailable, m.proposals, m.rejected)
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("tokenstore_raft_applied_index", "Index of the last applied raft entry (the revision).", func() float64 { return float64(s.node.AppliedIndex()) })
	gauge("tokenstore_raft_is_leader", "1 if this member is the raft leader.", func() float64 {
		if s.node.Leader() == s.node.ID() {
			return 1
		}
		return 0
	})
	gauge("tokenstore_raft_has_leader", "1 if this member knows a leader.", func() float64 {
		if s.node.Leader() != 0 {
			return 1
		}
		return 0
	})
	gauge("tokenstore_serving_reads", "1 while this member may answer bounded reads.", func() float64 {
		if s.node.BoundedReadCheck() == nil {
			return 1
		}
		return 0
	})
	gauge("tokenstore_tokens", "Tokens in the in-memory index (including revoked).", func() float64 { return float64(s.state.TokenCount()) })
	m.lastUsedPerEntry = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokenstore_lastused_tokens_per_entry",
		Help:    "Tokens in each proposed lastUsedAt batch entry.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	})
	m.reg.MustRegister(m.lastUsedPerEntry)
	m.authx = newAuthMetrics(m.reg, s.log, s.state)
	return m
}

// registerLastUsed exports the tracker's counters (all zero when tracking
// is disabled).
func (m *metrics) registerLastUsed(t *lastused.Tracker) {
	stat := func(f func(lastused.Stats) float64) func() float64 {
		return func() float64 {
			if t == nil {
				return 0
			}
			return f(t.Stats())
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tokenstore_lastused_pending_tokens", Help: "Tokens with uses not yet seen applied."},
			stat(func(s lastused.Stats) float64 { return float64(s.Pending) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tokenstore_lastused_dropped_total", Help: "Uses dropped because --last-used-max-pending tokens were already pending."},
			stat(func(s lastused.Stats) float64 { return float64(s.Dropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tokenstore_lastused_reports_received_total", Help: "lastUsedAt reports received from other members."},
			stat(func(s lastused.Stats) float64 { return float64(s.ReportsReceived) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tokenstore_lastused_entries_proposed_total", Help: "lastUsedAt batch entries proposed by this member as leader."},
			stat(func(s lastused.Stats) float64 { return float64(s.EntriesProposed) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tokenstore_lastused_failures_total", Help: "Failed reports or proposals (the uses stay pending)."},
			stat(func(s lastused.Stats) float64 { return float64(s.Failures) })),
	)
}

func (m *metrics) auth(r tokenstorev1.DenyReason) {
	if int(r) < len(m.authByRes) {
		m.authByRes[r].Inc()
	}
}
