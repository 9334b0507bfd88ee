package server

// Overload protection (DESIGN.md, failure 4: auth avalanches).
//
// A member admits at most --max-inflight client requests at once, gRPC and
// HTTP together: the two listeners share the same cores, so one budget
// bounds the work the member has accepted, whichever door it came in by.
// A request beyond the budget is refused at once, before its handler runs,
// with a retryable status and a hint how long to wait:
//
//   - gRPC: RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail and the
//     grpc-retry-pushback-ms trailer (what gRPC's own retry policy obeys);
//   - HTTP: 429 Too Many Requests with Retry-After and a metav1.Status body
//     (kube-apiserver's webhook client retries 429 and honours it;
//     server/webhook/status.go).
//
// Nothing waits for a slot: a queue in front of a saturated member only
// turns overload into latency and then into timeouts the callers retry,
// which is the avalanche. Refusing costs a few hundred nanoseconds, so a
// member keeps answering the requests it admitted at its normal speed and
// its refusals stay cheap however many arrive.
//
// Exempt, so probes and scrapes are answered under any load: the gRPC
// health service and the HTTP /healthz, /livez, /readyz and /metrics.
//
// Raft traffic needs no share of this budget: it arrives on the peer
// listener (--listen-peer), served by the transport's own grpc.Server
// (raftstore/transport) with its own connections, streams and goroutines,
// and these interceptors are not installed there. Heartbeats and votes
// therefore never wait behind client requests; what client load can still
// take from them is CPU, and the budget bounds that too.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenstore/tokenstore/server/webhook"
)

// DefaultMaxInflight is --max-inflight's default, derived from measurement
// (docs/BENCHMARKS.md, "Overload: choosing --max-inflight"): on the
// reference two-core machine bounded reads reach full throughput with a few
// dozen requests in flight, but linearizable reads and writes wait on raft
// rather than on the CPU, and their throughput keeps growing with the
// requests that can share one ReadIndex round or one fsync: at 640 offered
// clients creates reach 8,100/s with 1024 slots and only 3,400/s with 256.
// 1024 admits every load the measured machine can produce at full
// throughput (admitted p99 under 130 ms for writes, 50 ms for reads) and
// still bounds memory: a request in flight costs a goroutine and its
// buffers, a few tens of KiB, so the budget holds tens of MiB at most.
const DefaultMaxInflight = 1024

// admission is the member's budget of client requests in flight. It is
// safe for concurrent use; admit and release are one atomic add each, so
// the budget itself never becomes the bottleneck it protects.
type admission struct {
	limit      int64
	retryAfter time.Duration
	inflight   atomic.Int64
	// rejected counts refusals by listener ("grpc", "http"); nil in tests
	// that do not look.
	rejected *prometheus.CounterVec
}

// newAdmission returns a budget of limit requests (limit <= 0: unbounded)
// whose refusals ask callers to wait about retryAfter.
func newAdmission(limit int, retryAfter time.Duration, rejected *prometheus.CounterVec) *admission {
	return &admission{limit: int64(limit), retryAfter: retryAfter, rejected: rejected}
}

// admit takes a slot, or reports false (and counts the refusal) when all
// are taken. A true answer must be followed by one release.
func (a *admission) admit(listener string) bool {
	if a.limit <= 0 {
		return true
	}
	if a.inflight.Add(1) <= a.limit {
		return true
	}
	a.inflight.Add(-1)
	if a.rejected != nil {
		a.rejected.WithLabelValues(listener).Inc()
	}
	return false
}

func (a *admission) release() {
	if a.limit > 0 {
		a.inflight.Add(-1)
	}
}

// hint is the wait to suggest to one refused caller: retryAfter with ±50%
// jitter, so callers refused together do not all come back together.
func (a *admission) hint() time.Duration {
	return a.retryAfter/2 + rand.N(a.retryAfter+1)
}

// exemptMethod reports whether a gRPC method is outside admission: the
// standard health service, which load balancers and kubelets poll.
func exemptMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

// refusal is the gRPC status of a refused request. ctx, when it carries a
// server transport stream, also gets the pushback trailer.
func (a *admission) refusal(ctx context.Context) error {
	wait := a.hint()
	_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(wait.Milliseconds(), 10)))
	st := status.New(codes.ResourceExhausted,
		fmt.Sprintf("member overloaded: %d requests in flight (--max-inflight); retry in %v", a.limit, wait.Round(time.Millisecond)))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}

// enterUnary admits or refuses a unary client RPC: an error is the
// refusal; admitted reports that a slot was taken, which the caller gives
// back with release when the call is done. It runs first (grpc_chain.go),
// so a refused request costs no deadline, no read gate, no lookup.
func (a *admission) enterUnary(ctx context.Context, fullMethod string) (admitted bool, err error) {
	if exemptMethod(fullMethod) {
		return false, nil
	}
	if !a.admit("grpc") {
		return false, a.refusal(ctx)
	}
	return true, nil
}

// unaryInterceptor is enterUnary as an interceptor of its own (the
// server's chain calls enterUnary directly, grpc_chain.go).
func (a *admission) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	admitted, err := a.enterUnary(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if admitted {
		defer a.release()
	}
	return h(ctx, req)
}

// streamInterceptor admits or refuses a streaming client RPC (snapshot
// download, reflection) for its whole life.
func (a *admission) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if exemptMethod(info.FullMethod) {
		return h(srv, ss)
	}
	if !a.admit("grpc") {
		return a.refusal(ss.Context())
	}
	defer a.release()
	return h(srv, ss)
}

// exemptPaths are the HTTP paths outside admission.
var exemptPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/metrics": true}

// httpHandler admits or refuses HTTP requests to next (the webhooks);
// probes and metrics pass untouched.
func (a *admission) httpHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exemptPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		if !a.admit("http") {
			webhook.WriteFailure(w, webhook.TooMany(
				fmt.Sprintf("member overloaded: %d requests in flight (--max-inflight); retry after the Retry-After delay", a.limit), a.hint()))
			return
		}
		defer a.release()
		next.ServeHTTP(w, r)
	})
}
