package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc"
	"github.com/tokenstore/tokenstore/server/state"
)

// Peer Forward kinds of the OIDC key refresh. Only the leader fetches keys:
// a follower that meets an unknown key id sends forwardOIDCRefresh (payload:
// the issuer URL; no answer), rate-limited by the Fetcher; RefreshIssuer on a
// follower sends forwardOIDCRefreshNow (payload: the issuer URL; answer: the
// index of the entry that changed the keys, 8 bytes big endian, 0 when they
// did not change).
const (
	forwardOIDCRefresh    = "oidc-refresh/v1"
	forwardOIDCRefreshNow = "oidc-refresh-now/v1"
)

// oidcParts are a member's OIDC pieces: the validator every member uses and
// the fetcher only the leader's copy of runs fetches in.
type oidcParts struct {
	validator *oidc.Validator
	fetcher   *oidc.Fetcher
}

// jwtClock is the clock JWT time checks use: the member's clock (cluster
// time by default: corrected toward the median of the voters' clocks,
// clustertime.go), so every member decides about a JWT with the same time.
func (s *Server) jwtClock() func() time.Time { return s.clock.Now }

// startOIDC makes the validator and fetcher, registers the forward
// handlers and metrics, and runs the fetcher until ctx ends (it fetches
// only while this member is leader).
func (s *Server) startOIDC(ctx context.Context) *oidcParts {
	isLeader := func() bool { return s.node.Leader() == s.node.ID() }
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_oidc_key_fetches_total",
		Help: "OIDC discovery+JWKS fetches by this member while leader, by outcome (changed: a new key set was replicated; unchanged; failed: the replicated keys stay in use).",
	}, []string{"outcome"})
	view := s.state.OIDC().View
	s.metrics.reg.MustRegister(fetches, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tokenstore_oidc_issuers",
		Help: "OIDC issuers this member validates JWTs for.",
	}, func() float64 { return float64(view().Len()) }))
	p := &oidcParts{}
	p.fetcher = oidc.NewFetcher(oidc.FetcherConfig{
		View:     view,
		IsLeader: isLeader,
		Now:      s.clock.Now,
		Propose: func(ctx context.Context, k *raftstorev1.SetOIDCIssuerKeys) (uint64, error) {
			_, idx, err := s.proposeOIDC(ctx, "replicate OIDC keys", &raftstorev1.Command{Op: &raftstorev1.Command_SetOidcIssuerKeys{SetOidcIssuerKeys: k}})
			return idx, err
		},
		AskLeader: func(ctx context.Context, issuer string) error {
			leader := s.node.Leader()
			if leader == 0 {
				return errors.New("no leader known")
			}
			_, err := s.node.Forward(ctx, leader, forwardOIDCRefresh, []byte(issuer))
			return err
		},
		Fetched: func(_ string, changed bool, err error) {
			switch {
			case err != nil:
				fetches.WithLabelValues("failed").Inc()
			case changed:
				fetches.WithLabelValues("changed").Inc()
			default:
				fetches.WithLabelValues("unchanged").Inc()
			}
		},
		Logger: s.log,
	})
	p.validator = oidc.NewValidator(oidc.ValidatorConfig{
		View:       view,
		Now:        s.jwtClock(),
		Leeway:     s.cfg.JWTLeeway,
		UnknownKey: p.fetcher.RequestRefresh,
	})
	s.node.HandleForwards(forwardOIDCRefresh, func(_ context.Context, _ uint64, payload []byte) ([]byte, error) {
		if !isLeader() {
			return nil, errors.New("not the leader")
		}
		p.fetcher.RequestRefresh(string(payload))
		return nil, nil
	})
	s.node.HandleForwards(forwardOIDCRefreshNow, func(ctx context.Context, _ uint64, payload []byte) ([]byte, error) {
		_, idx, err := p.fetcher.Refresh(ctx, string(payload))
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint64(nil, idx), nil
	})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); p.fetcher.Run(ctx) }()
	return p
}

// refreshOIDC makes the leader fetch an issuer's keys now. It returns once
// any change is applied on this member.
func (s *Server) refreshOIDC(ctx context.Context, issuer string) (bool, error) {
	var idx uint64
	if s.node.Leader() == s.node.ID() {
		_, i, err := s.oidc.fetcher.Refresh(ctx, issuer)
		if err != nil {
			return false, err
		}
		idx = i
	} else {
		leader := s.node.Leader()
		if leader == 0 {
			return false, status.Error(codes.Unavailable, "no leader known to fetch the keys")
		}
		b, err := s.node.Forward(ctx, leader, forwardOIDCRefreshNow, []byte(issuer))
		if err != nil {
			return false, err
		}
		if len(b) != 8 {
			return false, fmt.Errorf("leader answered %d bytes, want 8", len(b))
		}
		idx = binary.BigEndian.Uint64(b)
	}
	if idx == 0 {
		return false, nil
	}
	return true, s.node.WaitApplied(ctx, idx)
}

// proposeOIDC replicates cmd and returns the OIDC store's result and the
// index it was applied at.
func (s *Server) proposeOIDC(ctx context.Context, what string, cmd *raftstorev1.Command) (oidc.Result, uint64, error) {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return oidc.Result{}, 0, status.Errorf(codes.Internal, "%s: encode: %v", what, err)
	}
	res, err := s.node.Propose(ctx, b)
	if err != nil {
		s.metrics.proposals.WithLabelValues("failed").Inc()
		return oidc.Result{}, 0, rpcError(what, err)
	}
	s.metrics.proposals.WithLabelValues("applied").Inc()
	out, _ := res.Value.(oidc.Result)
	if out.Err != nil {
		code := codes.FailedPrecondition
		switch {
		case errors.Is(out.Err, oidc.ErrInvalid):
			code = codes.InvalidArgument
		case errors.Is(out.Err, oidc.ErrNotFound):
			code = codes.NotFound
		case errors.Is(out.Err, oidc.ErrStale):
			code = codes.Aborted
		}
		return out, res.Index, status.Errorf(code, "%s refused: %v", what, out.Err)
	}
	return out, res.Index, nil
}

// authenticateJWT is the JWT branch of Server.authenticate: after the read
// gate, the replicated issuers and key sets decide, at the JWT clock.
func (s *Server) authenticateJWT(ctx context.Context, req authRequest, start time.Time) (authAnswer, error) {
	if err := s.readGate(ctx, req.consistency); err != nil {
		s.metrics.unavailable.Inc()
		return authAnswer{}, err
	}
	v := s.oidc.validator.Verify(req.token, req.audiences)
	d := state.Decision{Revision: v.Revision}
	switch v.Reason {
	case oidc.Accepted:
		d.Authenticated, d.User, d.Audiences = true, v.User, v.Audiences
	case oidc.Expired:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_EXPIRED
	case oidc.AudienceMismatch:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_AUDIENCE_MISMATCH
	default:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_UNKNOWN
	}
	s.metrics.authAnswered(req.path, d.Reason, start)
	return authAnswer{Decision: d, revision: v.Revision, message: v.Message}, nil
}
