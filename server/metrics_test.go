package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// exercised starts a member and makes every metric family appear: a
// write, authentications over gRPC and both webhooks, and the label values
// that only a multi-member cluster or an overload would create.
func exercised(t *testing.T) (*Server, map[string]*dto.MetricFamily) {
	t.Helper()
	s, conn := startSolo(t, t.TempDir())
	ctx := context.Background()
	r, err := tokenstorev1.NewTokenServiceClient(conn).CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	auth := tokenstorev1.NewAuthServiceClient(conn)
	for _, tok := range []string{r.GetBearerToken(), "malformed"} {
		if _, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
	h := s.httpHandler()
	for _, path := range []string{"/apis/authentication.k8s.io/v1/tokenreviews", "/v1/authenticate"} {
		body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + r.GetBearerToken() + `"}}`
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	m := s.metrics
	m.peerRTT.WithLabelValues("peer").Observe(0.001)
	m.peerUp.WithLabelValues("peer").Set(1)
	m.tolerance.Store(0)
	m.probed.Store(true)
	m.rejected.WithLabelValues("grpc")
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return s, out
}

// value is the value of the family's metric whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no %s with labels %v", name, want)
	return 0
}

// TestMetricsCountWhatHappened checks the metrics against what the test
// did: authentications by result and path, a committed proposal, raft
// state of a one-member cluster.
func TestMetricsCountWhatHappened(t *testing.T) {
	_, fams := exercised(t)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tokenstore_authentications_total", map[string]string{"path": "grpc", "result": "authenticated"}, 1},
		{"tokenstore_authentications_total", map[string]string{"path": "grpc", "result": "malformed"}, 1},
		{"tokenstore_authentications_total", map[string]string{"path": "tokenreview", "result": "authenticated"}, 1},
		{"tokenstore_authentications_total", map[string]string{"path": "rancher", "result": "authenticated"}, 1},
		{"tokenstore_authentication_duration_seconds", map[string]string{"path": "grpc"}, 2},
		{"tokenstore_grpc_requests_total", map[string]string{"method": "/tokenstore.v1.AuthService/Authenticate", "code": "OK"}, 2},
		{"tokenstore_raft_members", map[string]string{"role": "voter"}, 1},
		{"tokenstore_raft_is_leader", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"tokenstore_raft_proposals_committed_total", "tokenstore_raft_entries_applied_total", "tokenstore_raft_leader_changes_total", "tokenstore_raft_term"} {
		if got := value(t, fams, name, nil); got < 1 {
			t.Errorf("%s = %v after an election and a write", name, got)
		}
	}
	if got := value(t, fams, "tokenstore_raft_apply_duration_seconds", nil); got < 1 {
		t.Errorf("no apply batch timed")
	}
	if age := value(t, fams, "tokenstore_read_confirmation_age_seconds", nil); age < 0 || age > 5 {
		t.Errorf("read confirmation age %vs on a ready member", age)
	}
}

// TestDashboardUsesExistingMetrics reads every query of the Grafana
// dashboard and of the alerting rules and checks that each metric it names
// is one a member exports, so neither silently shows "no data" (or never
// fires) after a rename.
func TestDashboardUsesExistingMetrics(t *testing.T) {
	_, fams := exercised(t)
	b, err := os.ReadFile("../deploy/grafana/tokenstore.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var queries []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "expr" || k == "definition") {
					queries = append(queries, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(dash)
	if len(queries) < 10 {
		t.Fatalf("found only %d queries in the dashboard", len(queries))
	}
	// The alerting rules beside it.
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	b, err = os.ReadFile("../deploy/grafana/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alerts.yaml: rule %q lacks a name, an expression, a severity or a summary", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alerts.yaml: rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			queries = append(queries, r.Expr)
		}
	}
	name := regexp.MustCompile(`\b(?:tokenstore|process|go)_[a-zA-Z0-9_:]+\b`)
	seen := 0
	for _, q := range queries {
		for _, n := range name.FindAllString(q, -1) {
			seen++
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := fams[strings.TrimSuffix(n, suffix)]; ok && strings.HasSuffix(n, suffix) && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
					base = strings.TrimSuffix(n, suffix)
				}
			}
			if _, ok := fams[base]; !ok {
				t.Errorf("the dashboard queries %s, which no member exports: %s", n, q)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no metric names found in the dashboard")
	}
}

// TestProbeMeasuresPeers runs the peer probe of a one-member cluster: no
// peer to ask, and the member alone is a quorum with no failure to spare.
func TestProbeMeasuresPeers(t *testing.T) {
	s, _ := startSolo(t, t.TempDir())
	deadline := time.Now().Add(2*probeInterval + time.Second)
	for !s.metrics.probed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the peer probe never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.metrics.tolerance.Load(); got != 0 {
		t.Errorf("failure tolerance of a one-member cluster %d, want 0", got)
	}
}
