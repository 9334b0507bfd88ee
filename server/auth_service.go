package server

import (
	"context"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// authService implements tokenstorev1.AuthServiceServer.
type authService struct {
	tokenstorev1.UnimplementedAuthServiceServer
	s *Server
}

// Authenticate answers from the in-memory index. Malformed input is refused
// first, without waiting on the read gate, any hash or lookup.
func (a *authService) Authenticate(ctx context.Context, req *tokenstorev1.AuthenticateRequest) (*tokenstorev1.AuthenticateResponse, error) {
	s := a.s
	if _, _, ok := token.Parse(req.GetToken()); !ok {
		s.metrics.auth(tokenstorev1.DenyReason_DENY_REASON_MALFORMED)
		return &tokenstorev1.AuthenticateResponse{Header: s.header(s.node.AppliedIndex()), Reason: tokenstorev1.DenyReason_DENY_REASON_MALFORMED}, nil
	}
	if err := s.readGate(ctx, req.GetConsistency()); err != nil {
		s.metrics.unavailable.Inc()
		return nil, err
	}
	rev := s.node.AppliedIndex()
	now := time.Now()
	d := s.state.Authenticate(req.GetToken(), now)
	s.metrics.auth(d.Reason)
	if d.Authenticated && s.lastUsed != nil {
		s.lastUsed.Record(d.TokenID, now.UnixNano(), d.LastUsed)
	}
	return &tokenstorev1.AuthenticateResponse{
		Header:        s.header(rev),
		Authenticated: d.Authenticated,
		Reason:        d.Reason,
		User:          d.User,
		TokenId:       d.TokenID,
	}, nil
}
