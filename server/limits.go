package server

// Limits: what one request may cost a member, on every listener. Each value
// is here with the reason for it, so a refusal can be traced to one place.
//
//   - Client gRPC (--listen-client): a request is at most
//     --max-request-bytes (default 1 MiB: the largest legitimate request, an
//     RBAC apply or a token import batch, is one replicated entry, and raft
//     sends entries in 1 MiB messages); an answer at most MaxResponseBytes.
//     A unary call without a deadline gets --request-timeout
//     (deadlineInterceptor in server.go; Authenticate and Authorize get it
//     at their only wait, a linearizable read gate); only the snapshot
//     stream runs without one, since its length grows with the state.
//   - Peer gRPC (--listen-peer): raftstore/transport bounds a message at
//     64 MiB, far above its 4 MiB send batches and 1 MiB snapshot chunks.
//   - HTTP (--listen-http): headers at most HTTPMaxHeaderBytes, read within
//     HTTPReadHeaderTimeout, the whole request within HTTPReadTimeout; a
//     webhook body at most --max-request-bytes (413 past it); an idle
//     keep-alive connection is closed after HTTPIdleTimeout.
//   - Tokens: a bearer token longer than token.MaxBearerLen (512 bytes) is
//     refused as malformed before any lookup or hash; a JWT longer than
//     oidc.MaxJWTLen (16 KiB: service-account and ID tokens are 1 to 4 KiB,
//     the rest is room for large group claims) before it is split or
//     decoded. Both live with their parsers.

import (
	"net/http"
	"time"
)

const (
	// MaxResponseBytes bounds one gRPC answer of the client API. The
	// largest is a whole RBAC listing, sent in one answer so that it is
	// one revision; tokenctl accepts up to the same 256 MiB. Past it the
	// call fails with RESOURCE_EXHAUSTED instead of a client running out
	// of memory.
	MaxResponseBytes = 256 << 20

	// HTTPMaxHeaderBytes bounds the request line and headers of an HTTP
	// request. kube-apiserver's webhook client and Prometheus send a few
	// hundred bytes; net/http's default of 1 MiB per connection only
	// helps a client that wants to hold memory. Past it: 431.
	HTTPMaxHeaderBytes = 64 << 10

	// HTTPReadHeaderTimeout bounds the time to send the headers, so a
	// client trickling them (slowloris) cannot hold a connection.
	HTTPReadHeaderTimeout = 10 * time.Second

	// HTTPReadTimeout bounds reading a whole request, body included. A
	// webhook body is at most --max-request-bytes, seconds at any speed a
	// real client has.
	HTTPReadTimeout = 30 * time.Second

	// HTTPIdleTimeout closes keep-alive connections idle this long.
	// kube-apiserver keeps its webhook connection busy; an idle one is a
	// file descriptor held for nothing.
	HTTPIdleTimeout = 2 * time.Minute
)

// httpLimits are the HTTP server's limits; tests shorten the timeouts.
type httpLimits struct {
	maxHeaderBytes    int
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	idleTimeout       time.Duration
}

// defaultHTTPLimits are the limits every member serves HTTP with.
var defaultHTTPLimits = httpLimits{
	maxHeaderBytes:    HTTPMaxHeaderBytes,
	readHeaderTimeout: HTTPReadHeaderTimeout,
	readTimeout:       HTTPReadTimeout,
	idleTimeout:       HTTPIdleTimeout,
}

// newHTTPServer is the member's HTTP server for h with limits l. There is
// no WriteTimeout: a webhook answer is bounded by --request-timeout in the
// handler, and /metrics must not be cut short on a slow scrape.
func newHTTPServer(h http.Handler, l httpLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    l.maxHeaderBytes,
		ReadHeaderTimeout: l.readHeaderTimeout,
		ReadTimeout:       l.readTimeout,
		IdleTimeout:       l.idleTimeout,
	}
}
