package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rpcKind says whether an RPC may be sent to a second member after a first
// one received it.
type rpcKind int

const (
	// readRPC has no effect on the cluster, so it is sent to the next
	// endpoint when a member answers UNAVAILABLE.
	readRPC rpcKind = iota
	// writeRPC is sent to at most one member: once a connection is READY
	// and the request is sent, a failure may still mean it was applied.
	writeRPC
)

// endpoints connects to the first usable member of a list. It opens a fresh
// connection per command (tokenctl runs one command per process), so no
// connection state outlives a call.
type endpoints struct {
	addrs       []string
	dialTimeout time.Duration
	userAgent   string
	// transport secures connections (nil: plain text); dialOptions carry
	// the caller's token (credentials.go).
	transport   credentials.TransportCredentials
	dialOptions []grpc.DialOption
	// debug, when not nil, receives one line per skipped endpoint. Nil keeps
	// stderr quiet unless the command fails.
	debug io.Writer
}

// call runs fn against the first endpoint whose connection becomes READY
// within dialTimeout, following the failover rules of kind. fn may be run
// more than once (once per endpoint) for readRPC, so it must only publish
// its results when it returns nil.
//
// Errors: *unreachableError when no connection became READY (nothing was
// sent); *unavailableError when every member that was reached answered
// UNAVAILABLE to a read; *rpcError for any other status from a member;
// errInterrupted when ctx was cancelled; otherwise fn's own error.
func (e *endpoints) call(ctx context.Context, kind rpcKind, fn func(context.Context, grpc.ClientConnInterface) error) error {
	var (
		tried    []string
		lastErr  error
		answered bool // a member received the request and said UNAVAILABLE
	)
	for _, addr := range e.addrs {
		if ctx.Err() != nil {
			break
		}
		tried = append(tried, addr)
		conn, err := e.connect(ctx, addr)
		if err != nil {
			e.debugf("skipping endpoint %s: %v", addr, err)
			lastErr = err
			continue
		}
		err = fn(ctx, conn)
		// Close errors are not interesting: the answer is already in hand.
		_ = conn.Close()
		if err == nil {
			return nil
		}
		if kind == readRPC && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
			answered = true
			lastErr = statusError(ctx, kind, err)
			e.debugf("endpoint %s unavailable, trying the next: %v", addr, lastErr)
			continue
		}
		return statusError(ctx, kind, err)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return errInterrupted
	}
	if answered {
		return &unavailableError{tried: tried, last: lastErr}
	}
	if lastErr == nil {
		// Nothing was tried: the deadline had passed already, or the list
		// is empty (options rejects that, but call does not rely on it).
		lastErr = errors.New("no endpoints configured")
		if ctx.Err() != nil {
			lastErr = context.Cause(ctx)
		}
	}
	return &unreachableError{tried: tried, last: lastErr}
}

// connect returns a connection to addr that is READY, or an error saying why
// it did not become READY within dialTimeout. A connection that fails
// outright (refused, no route, name not found) is given up at once rather
// than after the full dial timeout: waiting for gRPC's reconnect backoff
// would only slow down the move to the next endpoint.
func (e *endpoints) connect(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	rec := &dialRecorder{}
	// passthrough hands addr to our dialer untouched, so name resolution
	// happens in net.Dialer and its errors ("no such host") are recorded
	// like any other dial error.
	tc := e.transport
	if tc == nil {
		tc = insecure.NewCredentials()
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(recordingCreds{TransportCredentials: tc, rec: rec}),
		grpc.WithContextDialer(rec.dial),
		grpc.WithUserAgent(e.userAgent),
	}, e.dialOptions...)
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	dctx, cancel := context.WithTimeout(ctx, e.dialTimeout)
	defer cancel()
	conn.Connect()
	for {
		state := conn.GetState()
		switch state {
		case connectivity.Ready:
			return conn, nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			_ = conn.Close()
			return nil, rec.failure(addr, "connection failed after the TCP connect (not a gRPC server?)")
		}
		if !conn.WaitForStateChange(dctx, state) {
			_ = conn.Close()
			if ctx.Err() != nil || deadlinePassed(ctx) {
				// The command's own deadline or an interrupt, not this
				// endpoint's dial timeout.
				return nil, fmt.Errorf("%s: %w", addr, deadlineCause(ctx))
			}
			return nil, rec.failure(addr, fmt.Sprintf("not ready within %s (--dial-timeout)", e.dialTimeout))
		}
	}
}

func (e *endpoints) debugf(format string, args ...any) {
	if e.debug != nil {
		fmt.Fprintf(e.debug, "debug: "+format+"\n", args...)
	}
}

// dialRecorder dials TCP for gRPC and remembers the last dial error, which
// gRPC's connectivity states do not expose. That error ("connect: connection
// refused") is what a person needs to see when an endpoint is skipped.
type dialRecorder struct {
	mu  sync.Mutex
	err error
}

func (r *dialRecorder) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	// A successful dial clears the record: a later handshake failure must
	// not be blamed on an earlier attempt's dial error.
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	return conn, err
}

// failure describes why addr is being skipped: the recorded dial error when
// there is one (it names the address itself), else reason.
func (r *dialRecorder) failure(addr, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	return fmt.Errorf("%s: %s", addr, reason)
}

// statusError reduces an RPC error to an *rpcError carrying the member's
// message. When our own context ended (deadline or interrupt) that is the
// reason given, whatever gRPC made of it on the wire (DEADLINE_EXCEEDED, or
// CANCELLED when the member gave up first). A write that may have reached a
// member says that its outcome is unknown.
func statusError(ctx context.Context, kind rpcKind, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	code, msg := st.Code(), st.Message()
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		code, msg = codes.Canceled, errInterrupted.Error()
	case ctx.Err() != nil || deadlinePassed(ctx):
		code, msg = codes.DeadlineExceeded, deadlineCause(ctx).Error()
	case msg == "":
		msg = humanCode(code)
	}
	if kind == writeRPC {
		switch code {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
			msg += " (the change may or may not have been applied; check before retrying)"
		case codes.ResourceExhausted:
			// gRPC's own size refusal names bytes, not the setting.
			if strings.Contains(msg, "larger than max") {
				msg += " (the member's --max-request-bytes bounds one request; this one was not applied)"
			}
		}
	}
	return &rpcError{code: code, msg: msg}
}

// deadlinePassed reports whether ctx's deadline is behind us even if ctx
// does not say so yet: the member's copy of our deadline (sent as
// grpc-timeout) can fire and its DEADLINE_EXCEEDED arrive before our own
// context's timer has run.
func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// deadlineCause is context.Cause of a context that is done or whose
// deadline has passed; in the moment before its timer runs the cause is not
// recorded yet, so it waits for that.
func deadlineCause(ctx context.Context) error {
	<-ctx.Done()
	return context.Cause(ctx)
}
