package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// unaryInterceptor is the client gRPC server's only unary interceptor. It
// runs, in this order: admission (overload.go: a refused request costs
// nothing further), caller authorization (authz.go), then times and counts
// the call (metrics.go) around the default deadline (deadlineInterceptor)
// and the handler.
//
// One function instead of grpc.ChainUnaryInterceptor of four: grpc-go's
// chain makes a closure per interceptor per call, allocations that on the
// Authenticate path (a few µs of work in all) add up to a visible share
// of the garbage a member collects. Each step still lives with its
// concern; only their order is written here.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	admitted, err := s.admission.enterUnary(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if admitted {
		defer s.admission.release()
	}
	if err = s.authorizeRPC(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := s.deadlineInterceptor(ctx, req, info, h)
	s.metrics.observeUnary(info.FullMethod, start, err)
	return resp, err
}
