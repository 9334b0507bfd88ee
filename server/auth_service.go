package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc"
	"github.com/tokenstore/tokenstore/server/state"
	"github.com/tokenstore/tokenstore/server/token"
	"github.com/tokenstore/tokenstore/server/webhook"
)

// Every authentication, over gRPC or through a webhook, takes one path,
// Server.authenticate, so every interface gives the same answer for the
// same state:
//
//  0. a JWT (three base64url segments) goes to the OIDC issuers instead
//     (authenticateJWT, oidc.go); everything below is the token store's;
//  1. a token not of the token form is refused as malformed, before the
//     read gate, any lookup or hash; the refusal is counted by problem and
//     logged at most once per malformedLogEvery;
//  2. the read gate admits the read or fails closed (UNAVAILABLE / 503);
//  3. state.Check answers from the in-memory index at the applied revision;
//  4. a success is recorded for lastUsedAt (never failing or delaying it).
//
// An answer depends only on the token, the requested audiences, the
// replicated state at its revision and the clock (expiry): refusal texts
// name no member and no time.

// malformedLogEvery is the most often a malformed token is logged; the
// refusals in between are counted on the next line.
const malformedLogEvery = time.Second

// slowHashRetryAfter is what an overloaded answer asks the caller to wait:
// about the time of a few scrypt verifications.
const slowHashRetryAfter = time.Second

// authRequest is one authentication question.
type authRequest struct {
	token       string
	audiences   []string
	consistency tokenstorev1.ReadConsistency
	// from names the caller in logs; gRPC callers are found from ctx.
	from string
	// path is the interface it came in by, for metrics.
	path authPath
}

// authAnswer is the answer: a decision at a revision.
type authAnswer struct {
	state.Decision
	revision uint64
	// message is the refusal in words; empty when authenticated.
	message string
}

// errSlowHashBusy is the overloaded answer.
var errSlowHashBusy = status.Error(codes.ResourceExhausted,
	"every slow-hash (scrypt) verification slot is busy; retry in a second")

func (s *Server) authenticate(ctx context.Context, req authRequest) (authAnswer, error) {
	start := time.Now()
	if oidc.LooksLikeJWT(req.token) {
		return s.authenticateJWT(ctx, req, start)
	}
	id, secret, ok := token.Parse(req.token)
	if !ok {
		p := token.Diagnose(req.token)
		s.metrics.authAnswered(req.path, tokenstorev1.DenyReason_DENY_REASON_MALFORMED, start)
		s.metrics.authx.refusedMalformed(ctx, p, req.from)
		return authAnswer{
			Decision: state.Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_MALFORMED},
			revision: s.node.AppliedIndex(),
			message:  p.Explain(),
		}, nil
	}
	if err := s.readGate(ctx, req.consistency); err != nil {
		s.metrics.unavailable.Inc()
		return authAnswer{}, err
	}
	now := s.clock.Now() // cluster time (clustertime.go)
	d := s.state.Check(id, secret, req.audiences, now)
	rev := d.Revision // exactly the state the decision was read from
	if d.Busy {
		s.metrics.authx.overloaded.Inc()
		return authAnswer{}, errSlowHashBusy
	}
	s.metrics.authAnswered(req.path, d.Reason, start)
	if d.Authenticated && s.lastUsed != nil {
		s.lastUsed.Record(d.TokenID, now.UnixNano(), d.LastUsed)
	}
	return authAnswer{Decision: d, revision: rev, message: refusal(d.Reason)}, nil
}

// refusal says in words why a well-formed token was refused.
func refusal(r tokenstorev1.DenyReason) string {
	switch r {
	case tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED:
		return ""
	case tokenstorev1.DenyReason_DENY_REASON_UNKNOWN:
		return "unknown token or wrong secret"
	case tokenstorev1.DenyReason_DENY_REASON_EXPIRED:
		return "token expired"
	case tokenstorev1.DenyReason_DENY_REASON_DISABLED:
		return "token disabled"
	case tokenstorev1.DenyReason_DENY_REASON_REVOKED:
		return "token revoked"
	case tokenstorev1.DenyReason_DENY_REASON_AUDIENCE_MISMATCH:
		return "token is not valid for any of the requested audiences"
	}
	return "token refused: " + r.String()
}

// authService implements tokenstorev1.AuthServiceServer.
type authService struct {
	tokenstorev1.UnimplementedAuthServiceServer
	s *Server
}

// Authenticate answers from the in-memory index. Malformed input is refused
// first, without waiting on the read gate, any hash or lookup.
func (a *authService) Authenticate(ctx context.Context, req *tokenstorev1.AuthenticateRequest) (*tokenstorev1.AuthenticateResponse, error) {
	ans, err := a.s.authenticate(ctx, authRequest{token: req.GetToken(), audiences: req.GetAudiences(), consistency: req.GetConsistency()})
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.AuthenticateResponse{
		Header:        a.s.header(ans.revision),
		Authenticated: ans.Authenticated,
		Reason:        ans.Reason,
		User:          ans.User,
		TokenId:       ans.TokenID,
		Audiences:     ans.Audiences,
		Message:       ans.message,
	}, nil
}

// webhookAuthenticator answers TokenReviews through the shared path at the
// member's default read consistency, within --request-timeout as a gRPC
// request without a deadline is.
func (s *Server) webhookAuthenticator(ctx context.Context, r webhook.Review, path authPath) (webhook.Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	ans, err := s.authenticate(ctx, authRequest{token: r.Token, audiences: r.Audiences, from: r.RemoteAddr, path: path})
	if err != nil {
		if errors.Is(err, errSlowHashBusy) {
			return webhook.Answer{}, &webhook.Overloaded{RetryAfter: slowHashRetryAfter, Reason: status.Convert(err).Message()}
		}
		return webhook.Answer{}, errors.New(status.Convert(err).Message())
	}
	out := webhook.Answer{
		Authenticated: ans.Authenticated,
		Audiences:     ans.Audiences,
		Error:         ans.message,
		Revision:      ans.revision,
		Member:        s.cfg.Name,
	}
	if u := ans.User; u != nil {
		out.User = authenticationv1.UserInfo{Username: u.GetUsername(), UID: u.GetUid(), Groups: u.GetGroups()}
		if len(u.GetExtra()) > 0 {
			out.User.Extra = make(map[string]authenticationv1.ExtraValue, len(u.GetExtra()))
			for k, v := range u.GetExtra() {
				out.User.Extra[k] = v.GetValues()
			}
		}
	}
	return out, nil
}

// webhookHandlers are the TokenReview and Rancher kube-api-auth handlers,
// by route.
func (s *Server) webhookHandlers() map[string]http.Handler {
	observe := func(endpoint string) func(int) {
		return func(code int) { s.metrics.authx.webhook.WithLabelValues(endpoint, strconv.Itoa(code)).Inc() }
	}
	max := int64(s.cfg.MaxRequestBytes)
	on := func(p authPath) webhook.Authenticator {
		return func(ctx context.Context, r webhook.Review) (webhook.Answer, error) {
			return s.webhookAuthenticator(ctx, r, p)
		}
	}
	review := webhook.New(webhook.Config{Authenticate: on(pathTokenReview), MaxBodyBytes: max,
		DefaultVersion: webhook.VersionV1, Observe: observe("tokenreviews")})
	return map[string]http.Handler{
		"POST /apis/authentication.k8s.io/v1/tokenreviews":      review,
		"POST /apis/authentication.k8s.io/v1beta1/tokenreviews": review,
		"POST /v1/authenticate": webhook.New(webhook.Config{Authenticate: on(pathRancher), MaxBodyBytes: max,
			DefaultVersion: webhook.VersionV1beta1, Rancher: true, Observe: observe("rancher")}),
	}
}

// authMetrics are the metrics of the authentication path beyond
// tokenstore_authentications_total, and the throttled log of malformed
// tokens.
type authMetrics struct {
	malformed  []prometheus.Counter // by token.Problem
	overloaded prometheus.Counter
	webhook    *prometheus.CounterVec
	log        *throttledLog
}

func newAuthMetrics(reg prometheus.Registerer, log *slog.Logger, st *state.State) *authMetrics {
	m := &authMetrics{log: &throttledLog{log: log, every: malformedLogEvery}}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_malformed_tokens_total",
		Help: "Tokens refused as malformed before any lookup or hash, by problem.",
	}, []string{"problem"})
	m.malformed = make([]prometheus.Counter, len(token.Problems)+1)
	for _, p := range token.Problems {
		m.malformed[p] = vec.WithLabelValues(p.String())
	}
	m.overloaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenstore_authentications_overloaded_total",
		Help: "Authentications not answered (RESOURCE_EXHAUSTED / HTTP 429) because every slow-hash verification slot was busy.",
	})
	m.webhook = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_webhook_requests_total",
		Help: "Webhook HTTP requests, by endpoint (tokenreviews, rancher) and HTTP status.",
	}, []string{"endpoint", "code"})
	foreign := func(name, help string, f func(state.ForeignStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(st.ForeignStats())) })
	}
	reg.MustRegister(vec, m.overloaded, m.webhook,
		foreign("tokenstore_imported_hash_verifications_cached_total",
			"Imported-hash (Rancher) verifications answered from the memory of an earlier success.",
			func(f state.ForeignStats) uint64 { return f.Cached }),
		foreign("tokenstore_imported_hash_verifications_computed_total",
			"Imported-hash (Rancher) verifications that ran the hash (scrypt, SHA-256, SHA3-512).",
			func(f state.ForeignStats) uint64 { return f.Computed }),
	)
	return m
}

// refusedMalformed counts a malformed token and logs it, throttled.
func (m *authMetrics) refusedMalformed(ctx context.Context, p token.Problem, from string) {
	if int(p) < len(m.malformed) && m.malformed[p] != nil {
		m.malformed[p].Inc()
	}
	m.log.warn(func() []any {
		if from == "" {
			if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
				from = pr.Addr.String()
			}
		}
		return []any{"problem", p.String(), "from", from}
	})
}

// throttledLog writes at most one line per interval; the events in between
// are only counted, and the count is on the next line written. One failing
// client cannot flood the log, and none of its events goes unaccounted.
type throttledLog struct {
	log   *slog.Logger
	every time.Duration

	mu         sync.Mutex
	next       time.Time
	suppressed uint64
}

// warn logs one malformed-token refusal unless a line was written less
// than an interval ago. attrs is called only when a line is written.
func (t *throttledLog) warn(attrs func() []any) {
	now := time.Now()
	t.mu.Lock()
	if now.Before(t.next) {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	n := t.suppressed
	t.suppressed = 0
	t.next = now.Add(t.every)
	t.mu.Unlock()
	t.log.Warn("refused malformed token", append(attrs(), "suppressed_since_last_line", n, "interval", t.every)...)
}
