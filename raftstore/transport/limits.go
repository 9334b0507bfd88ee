package transport

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// defaultPeerTimeout is the deadline a unary peer call (Join, Forward,
// MemberStatus) gets when the caller sent none. Members always send one
// (the client request's, or their own); this bounds what a peer that does
// not can hold: a forwarded write waits at most this long for its commit.
// The raft message and snapshot streams are long-lived by design and get
// none.
const defaultPeerTimeout = 30 * time.Second

// deadlineInterceptor gives a unary call without a deadline one of d.
func deadlineInterceptor(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return h(ctx, req)
	}
}
