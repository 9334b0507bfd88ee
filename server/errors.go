package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/server/state"
)

// readGate admits a read at the requested consistency or fails closed with
// UNAVAILABLE (retryable: another member may answer).
func (s *Server) readGate(ctx context.Context, c tokenstorev1.ReadConsistency) error {
	if c == tokenstorev1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED && s.cfg.ReadConsistency == "linearizable" {
		c = tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	}
	if c == tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE {
		// The only wait of the read-gate methods (readGateMethods), bounded
		// here since deadlineInterceptor leaves them alone.
		ctx, cancel := s.requestContext(ctx)
		defer cancel()
		if err := s.node.LinearizableRead(ctx); err != nil {
			return rpcError("linearizable read", err)
		}
		return nil
	}
	if err := s.node.BoundedReadCheck(); err != nil {
		return status.Errorf(codes.Unavailable, "member %s cannot serve reads: %v", s.cfg.Name, err)
	}
	return nil
}

// rpcError maps an internal error to a gRPC status that tells the caller
// whether to retry elsewhere.
func rpcError(what string, err error) error {
	if _, ok := status.FromError(err); ok && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, state.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, state.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, state.ErrRevoked):
		code = codes.FailedPrecondition
	case errors.Is(err, state.ErrConflict):
		code = codes.Aborted
	case errors.Is(err, state.ErrInvalid), errors.Is(err, raftstore.ErrTooLarge):
		code = codes.InvalidArgument
	case errors.Is(err, raftstore.ErrOutcomeUnknown):
		// The write may or may not have been applied.
		code = codes.DeadlineExceeded
	case errors.Is(err, raftstore.ErrTransferAbandoned):
		// Nothing changed: the caller may try again or pick another member.
		code = codes.Aborted
	case errors.Is(err, raftstore.ErrNotConfirmed), errors.Is(err, raftstore.ErrStopped):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Errorf(code, "%s: %v", what, err)
}
