package transport

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// TestPeerCallsWithoutDeadlineGetOne: a unary peer call that brings no
// deadline gets defaultPeerTimeout; a caller's own deadline is kept.
func TestPeerCallsWithoutDeadlineGetOne(t *testing.T) {
	in := deadlineInterceptor(defaultPeerTimeout)
	left := func(ctx context.Context) (time.Duration, bool) {
		var d time.Duration
		var ok bool
		_, _ = in(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
			var dl time.Time
			dl, ok = ctx.Deadline()
			d = time.Until(dl)
			return nil, nil
		})
		return d, ok
	}
	if d, ok := left(context.Background()); !ok || d <= defaultPeerTimeout-5*time.Second || d > defaultPeerTimeout {
		t.Errorf("call without deadline: deadline in %s (set %v), want %s", d, ok, defaultPeerTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if d, ok := left(ctx); !ok || d <= time.Minute {
		t.Errorf("call with a 2m deadline: deadline in %s, want the caller's", d)
	}
}
