package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/server/lastused"
)

// Metrics. Every member serves its own on /metrics from a registry of its
// own (no global state, so several members can run in one test process).
// The names, what each is for and the alerts built on them are listed in
// docs/operations.md; deploy/grafana/tokenstore.json is a dashboard of them,
// and a test checks that every metric the dashboard uses exists.
//
// raftstore keeps its counters in atomics (raftstore.Metrics) and knows no
// metrics library; they are read here at scrape time. What needs the
// network (peer round trips, reachability, the failure tolerance) is
// measured by probePeers in the background, so a scrape never waits on a
// peer.

// authPath is the interface an authentication question came in by: the
// label "path" of the authentication metrics.
type authPath int

const (
	pathGRPC        authPath = iota // AuthService.Authenticate
	pathTokenReview                 // POST /apis/authentication.k8s.io/.../tokenreviews
	pathRancher                     // POST /v1/authenticate (Rancher kube-api-auth)
	numAuthPaths
)

func (p authPath) String() string {
	return [...]string{"grpc", "tokenreview", "rancher"}[p]
}

// probeInterval is how often each member asks every other member about
// itself for the peer metrics: often enough that a dead voter shows in the
// failure tolerance within a scrape interval, and one tiny RPC per peer.
const probeInterval = 2 * time.Second

// metrics are one member's Prometheus metrics.
type metrics struct {
	reg *prometheus.Registry
	// authByRes[path][reason] counts answers; reason 0 = authenticated.
	authByRes   [numAuthPaths][]prometheus.Counter
	authLatency [numAuthPaths]prometheus.Observer
	unavailable prometheus.Counter
	proposals   *prometheus.CounterVec
	// tokensPurged and purgesDeferred count token retention's work
	// (retention.go).
	tokensPurged   prometheus.Counter
	purgesDeferred prometheus.Counter
	// rejected counts client requests refused by admission (overload.go),
	// by listener.
	rejected *prometheus.CounterVec
	authx    *authMetrics // auth_service.go

	grpcDuration *prometheus.HistogramVec
	grpcRequests *prometheus.CounterVec
	// unary holds each registered unary method's series, resolved on its
	// first call (resolveMethods); written before the server serves and
	// only read after.
	unary map[string]*unaryMethod

	lastUsedPerEntry prometheus.Histogram

	// Written by probePeers, read at scrape time.
	peerRTT   *prometheus.HistogramVec
	peerUp    *prometheus.GaugeVec
	tolerance atomic.Int64
	probed    atomic.Bool // tolerance holds a measurement
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	authVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_authentications_total",
		Help: "Authentications answered, by result (authenticated or the refusal reason) and path (grpc, tokenreview, rancher).",
	}, []string{"result", "path"})
	authDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokenstore_authentication_duration_seconds",
		Help:    "Time to answer an authentication, from the token to the decision (read gate, lookup and hash included), by path.",
		Buckets: []float64{.00001, .00003, .0001, .0003, .001, .003, .01, .03, .1, .3, 1},
	}, []string{"path"})
	m.reg.MustRegister(authVec, authDur)
	for p := authPath(0); p < numAuthPaths; p++ {
		for i := 0; i < len(tokenstorev1.DenyReason_name); i++ {
			name := "authenticated"
			if i > 0 {
				name = strings.ToLower(strings.TrimPrefix(tokenstorev1.DenyReason(i).String(), "DENY_REASON_"))
			}
			m.authByRes[p] = append(m.authByRes[p], authVec.WithLabelValues(name, p.String()))
		}
		m.authLatency[p] = authDur.WithLabelValues(p.String())
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
	m.grpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokenstore_grpc_request_duration_seconds",
		Help:    "Time to handle a unary client gRPC request, by method.",
		Buckets: []float64{.0001, .0003, .001, .003, .01, .03, .1, .3, 1, 3, 10},
	}, []string{"method"})
	m.grpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_grpc_requests_total", Help: "Unary client gRPC requests handled, by method and status code.",
	}, []string{"method", "code"})
	m.tokensPurged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenstore_tokens_purged_total", Help: "Revoked or expired tokens deleted by this member, as leader, after --token-retention.",
	})
	m.purgesDeferred = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenstore_token_purges_deferred_total", Help: "Purges of tokens past --token-retention put off because a member could not be asked or runs a binary that cannot apply them.",
	})
	m.reg.MustRegister(m.unavailable, m.proposals, m.rejected, m.grpcDuration, m.grpcRequests, m.tokensPurged, m.purgesDeferred)
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
	m.registerRaft(s.node)
	m.registerCluster(s)
	return m
}

// registerRaft exports the node's own counters and gauges.
func (m *metrics) registerRaft(n *raftstore.Node) {
	rm := n.Metrics()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.reg.MustRegister(
		gauge("tokenstore_raft_term", "Current raft term. It rises by one (or a few) per election.", func() float64 { return float64(n.Term()) }),
		gauge("tokenstore_raft_commit_index", "Highest raft index this member knows to be committed.", func() float64 { return float64(n.CommitIndex()) }),
		gauge("tokenstore_raft_apply_lag_entries", "Committed entries not yet applied here (commit index minus applied index).", func() float64 {
			c, a := n.CommitIndex(), n.AppliedIndex()
			if c < a {
				return 0
			}
			return float64(c - a)
		}),
		gauge("tokenstore_read_confirmation_age_seconds", "Age of this member's latest proof that it had applied everything the leader had committed (a completed ReadIndex round). Bounded reads fail closed once it passes --max-staleness.",
			func() float64 { return n.ConfirmedAge().Seconds() }),
		counter("tokenstore_raft_leader_changes_total", "Times this member saw a new leader elected.", &rm.LeaderChanges),
		counter("tokenstore_raft_proposals_committed_total", "Proposals of this member (token writes, lastUsedAt batches) committed and applied.", &rm.ProposalsCommitted),
		counter("tokenstore_raft_proposals_failed_total", "Proposals of this member that failed: no leader before the deadline, outcome unknown, too large, or the member stopped.", &rm.ProposalsFailed),
		counter("tokenstore_raft_proposals_resubmitted_total", "Proposals of this member handed to raft again because they certainly reached no log: their forwarding to the leader was dropped unsent (a leader that had just died), or the member they reached knew no leader or refused them (a leadership transfer).", &rm.ProposalsResubmitted),
		counter("tokenstore_raft_forwarded_proposals_dropped_total", "Proposals forwarded by other members that this member's raft refused (a leadership transfer in progress, the uncommitted-entry budget full) and handed back to their proposers.", &rm.ForwardedProposalsDropped),
		counter("tokenstore_raft_entries_applied_total", "Raft entries applied to the state database.", &rm.EntriesApplied),
		counter("tokenstore_raft_snapshots_taken_total", "Snapshots taken locally (the log is compacted behind each).", &rm.SnapshotsTaken),
		counter("tokenstore_raft_snapshot_sends_total", "Snapshot transfers to lagging members started by this member.", &rm.SnapshotSends),
		counter("tokenstore_raft_snapshot_send_failures_total", "Snapshot transfers reported failed to raft (retried later).", &rm.SnapshotSendFailures),
		counter("tokenstore_raft_snapshots_received_total", "State databases received from the leader.", &rm.SnapshotsReceived),
		counter("tokenstore_raft_snapshots_installed_total", "Received snapshots that replaced this member's state (a restore from a peer).", &rm.SnapshotsInstalled),
		histogramFunc("tokenstore_raft_apply_duration_seconds", "Time to apply one batch of committed entries in one state database transaction, fsync included; it delays everything committed behind it.", &rm.ApplyDuration),
		newFuncCollector(func(ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(raftMembersDesc, prometheus.GaugeValue, float64(len(n.Voters())), "voter")
			ch <- prometheus.MustNewConstMetric(raftMembersDesc, prometheus.GaugeValue, float64(len(n.Learners())), "learner")
		}, raftMembersDesc),
	)
}

var (
	raftMembersDesc = prometheus.NewDesc("tokenstore_raft_members",
		"Members of the applied raft configuration, by role (voter, learner).", []string{"role"}, nil)
	gossipMembersDesc = prometheus.NewDesc("tokenstore_gossip_members",
		"Members gossip knows of, this one included, by state (alive, suspect, dead). Zero without --listen-gossip.", []string{"state"}, nil)
	toleranceDesc = prometheus.NewDesc("tokenstore_cluster_failure_tolerance",
		"Voters that may still fail before quorum is lost, as this member sees it: reachable voters beyond a quorum. "+
			"A dead voter nobody removed lowers it; below 0 this member sees no quorum. Take the leader's value.", nil, nil)
)

// registerCluster exports what this member sees of the others: gossip
// states, and the peer probes' reachability, round trips and failure
// tolerance.
func (m *metrics) registerCluster(s *Server) {
	m.peerRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokenstore_peer_round_trip_seconds",
		Help:    "Round trip of a status request to another member over the peer transport, by peer name.",
		Buckets: []float64{.0001, .0003, .001, .003, .01, .03, .1, .3, 1},
	}, []string{"peer"})
	m.peerUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokenstore_peer_reachable",
		Help: "1 if the other member answered its last status probe over the peer transport, by peer name.",
	}, []string{"peer"})
	m.reg.MustRegister(m.peerRTT, m.peerUp,
		newFuncCollector(func(ch chan<- prometheus.Metric) {
			counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0}
			if s.disc != nil {
				for _, p := range s.disc.Peers() {
					counts[p.State]++
				}
			}
			for state, n := range counts {
				ch <- prometheus.MustNewConstMetric(gossipMembersDesc, prometheus.GaugeValue, float64(n), state)
			}
		}, gossipMembersDesc),
		newFuncCollector(func(ch chan<- prometheus.Metric) {
			if m.probed.Load() {
				ch <- prometheus.MustNewConstMetric(toleranceDesc, prometheus.GaugeValue, float64(m.tolerance.Load()))
			}
		}, toleranceDesc),
	)
}

// probePeers asks every other member of the applied configuration about
// itself every probeInterval, in parallel, and records the round trips,
// who answered and the failure tolerance that follows (computed as
// membership() does for tokenctl member list). It runs until s.stopc closes.
// Member ids come from the in-memory configuration; names from the
// answers, then gossip, else the id in hex.
func (s *Server) probePeers() {
	defer s.wg.Done()
	m := s.metrics
	labels := map[uint64]string{} // id -> peer label in use
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		// Wait first: right after start the peer connections are still
		// being made, and a probe then would report peers down.
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		voters, learners := s.node.Voters(), s.node.Learners()
		self := s.node.ID()
		type result struct {
			id   uint64
			name string
			rtt  time.Duration
			ok   bool
		}
		results := make([]result, 0, len(voters)+len(learners))
		var mu sync.Mutex
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for _, id := range append(voters, learners...) {
			if id == self {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				st, err := s.node.PeerStatus(ctx, id)
				r := result{id: id, rtt: time.Since(start), ok: err == nil && st.ID == id}
				if r.ok {
					r.name = st.Name
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}()
		}
		wg.Wait()
		cancel()

		up := int64(0)
		for _, v := range voters {
			if v == self {
				up++
			}
		}
		seen := map[uint64]bool{}
		for _, r := range results {
			seen[r.id] = true
			label := r.name
			if label == "" {
				label = s.peerName(r.id, labels[r.id])
			}
			if old, ok := labels[r.id]; ok && old != label {
				m.peerUp.DeleteLabelValues(old)
				m.peerRTT.DeleteLabelValues(old)
			}
			labels[r.id] = label
			if r.ok {
				m.peerUp.WithLabelValues(label).Set(1)
				m.peerRTT.WithLabelValues(label).Observe(r.rtt.Seconds())
				for _, v := range voters {
					if v == r.id {
						up++
					}
				}
			} else {
				m.peerUp.WithLabelValues(label).Set(0)
			}
		}
		for id, label := range labels {
			if !seen[id] { // no longer a member
				m.peerUp.DeleteLabelValues(label)
				m.peerRTT.DeleteLabelValues(label)
				delete(labels, id)
			}
		}
		if len(voters) > 0 {
			m.tolerance.Store(up - int64(len(voters)/2+1))
			m.probed.Store(true)
		}
	}
}

// peerName names a member that did not answer: the label it had, else its
// gossiped name, else its id.
func (s *Server) peerName(id uint64, had string) string {
	if had != "" {
		return had
	}
	if s.disc != nil {
		for _, p := range s.disc.Peers() {
			if p.MemberID == id && p.ClusterID == s.node.ClusterID() {
				return p.Name
			}
		}
	}
	return fmt.Sprintf("%016x", id)
}

// unaryMethod is one unary method's request series. WithLabelValues hashes
// the label values and takes the vector's lock on every call; Authenticate
// is called tens of thousands of times a second, so its series are looked
// up once. They are made on the method's first call, not at start, so the
// exported series are the same as with WithLabelValues per call.
type unaryMethod struct {
	once     sync.Once
	duration prometheus.Observer
	ok       prometheus.Counter // code OK; other codes are rare and looked up
}

// resolveMethods prepares the per-method series of every unary method
// registered on srv. Call it after the services are registered and before
// srv serves.
func (m *metrics) resolveMethods(srv *grpc.Server) {
	m.unary = map[string]*unaryMethod{}
	for svc, info := range srv.GetServiceInfo() {
		for _, md := range info.Methods {
			if !md.IsClientStream && !md.IsServerStream {
				m.unary["/"+svc+"/"+md.Name] = &unaryMethod{}
			}
		}
	}
}

// observeUnary times and counts one unary client request that passed
// admission and authorization (grpc_chain.go), started at start.
func (m *metrics) observeUnary(method string, start time.Time, err error) {
	took := time.Since(start).Seconds()
	code := status.Code(err)
	u := m.unary[method]
	if u == nil { // not registered when resolveMethods ran
		m.grpcDuration.WithLabelValues(method).Observe(took)
		m.grpcRequests.WithLabelValues(method, code.String()).Inc()
		return
	}
	u.once.Do(func() {
		u.duration = m.grpcDuration.WithLabelValues(method)
		u.ok = m.grpcRequests.WithLabelValues(method, codes.OK.String())
	})
	u.duration.Observe(took)
	if code == codes.OK {
		u.ok.Inc()
	} else {
		m.grpcRequests.WithLabelValues(method, code.String()).Inc()
	}
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

// authAnswered counts an authentication answered on path with reason (0:
// authenticated) and records how long it took since start.
func (m *metrics) authAnswered(p authPath, r tokenstorev1.DenyReason, start time.Time) {
	if p < 0 || p >= numAuthPaths {
		p = pathGRPC
	}
	m.authLatency[p].Observe(time.Since(start).Seconds())
	if int(r) < len(m.authByRes[p]) {
		m.authByRes[p][r].Inc()
	}
}

// funcCollector is a Collector whose metrics are computed at scrape time by
// collect, for values with labels that live elsewhere.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func newFuncCollector(collect func(ch chan<- prometheus.Metric), descs ...*prometheus.Desc) prometheus.Collector {
	return &funcCollector{descs: descs, collect: collect}
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// histogramFunc exports a raftstore.Histogram as a Prometheus histogram.
func histogramFunc(name, help string, h *raftstore.Histogram) prometheus.Collector {
	desc := prometheus.NewDesc(name, help, nil, nil)
	bounds := raftstore.LatencyBuckets()
	return newFuncCollector(func(ch chan<- prometheus.Metric) {
		cumulative, count, sum := h.Snapshot()
		buckets := make(map[float64]uint64, len(bounds))
		for i, b := range bounds {
			buckets[b] = cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(desc, count, sum, buckets)
	}, desc)
}
