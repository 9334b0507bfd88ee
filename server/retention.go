package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/state"
)

// Token retention (--token-retention): the leader deletes tokens revoked
// or expired longer ago than the retention (state/purge.go says why and
// how). Until then such a token is kept, so that authentications and audit
// say "revoked" or "expired" rather than "unknown token", and `tokenctl
// token get` still shows it.
//
// A member whose binary predates the PurgeTokens operation would stop on
// it, so the leader proposes one only when every member of the
// configuration reports the feature in its status (a rolling upgrade in
// progress waits for the last member).

// features are the optional replicated operations this binary applies
// (raftstore.Config.Features).
func features(cfg Config) []string {
	if cfg.TestNoFeatures {
		return nil
	}
	return []string{state.FeaturePurgeTokens}
}

// purgeBatch bounds the ids of one PurgeTokens entry (about 30 bytes each).
const purgeBatch = 1000

// retentionInterval is how often the leader looks for tokens to purge:
// a tenth of the retention, between one second and one minute.
func retentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Minute)
}

// retentionLoop purges, while this member leads, every interval.
func (s *Server) retentionLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(retentionInterval(s.cfg.TokenRetention))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.node.Leader() != s.node.ID() {
			continue
		}
		if err := s.purgeExpired(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("token retention: purge not done; retrying", "err", err)
		}
	}
}

// purgeExpired proposes the deletion of every token past the retention, in
// batches, once every member can apply it.
func (s *Server) purgeExpired(ctx context.Context) error {
	cutoff := s.clock.Now().Add(-s.cfg.TokenRetention).UnixNano()
	keep := func(id string) bool { return id == BootstrapAdminTokenID } // its record makes revoking it final
	ids := s.state.Purgeable(cutoff, purgeBatch, keep)
	if len(ids) == 0 {
		return nil
	}
	if err := s.everyMemberHas(ctx, state.FeaturePurgeTokens); err != nil {
		s.metrics.purgesDeferred.Inc()
		return err
	}
	total := 0
	for len(ids) > 0 {
		b, err := proto.Marshal(&raftstorev1.Command{Op: &raftstorev1.Command_PurgeTokens{
			PurgeTokens: &raftstorev1.PurgeTokens{Ids: ids, CutoffUnixNano: cutoff},
		}})
		if err != nil {
			return fmt.Errorf("encode purge: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		res, err := s.node.Propose(pctx, b)
		cancel()
		if err != nil {
			return fmt.Errorf("propose purge of %d tokens: %w", len(ids), err)
		}
		out, _ := res.Value.(state.PurgeOutcome)
		total += out.Purged
		s.metrics.tokensPurged.Add(float64(out.Purged))
		if len(ids) < purgeBatch || out.Purged == 0 {
			break
		}
		ids = s.state.Purgeable(cutoff, purgeBatch, keep)
	}
	if total > 0 {
		s.log.Info("token retention: purged revoked or expired tokens", "tokens", total, "retention", s.cfg.TokenRetention)
	}
	return nil
}

// everyMemberHas checks that every member of the configuration reports
// feature in its status.
func (s *Server) everyMemberHas(ctx context.Context, feature string) error {
	infos, err := s.node.Membership()
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	for _, m := range infos {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := s.node.PeerStatus(sctx, m.GetId())
		cancel()
		if err != nil {
			return fmt.Errorf("member %s cannot say whether it applies %s: %w", m.GetName(), feature, err)
		}
		if !slices.Contains(st.Features, feature) {
			return fmt.Errorf("member %s runs a binary that cannot apply %s (upgrade it)", m.GetName(), feature)
		}
	}
	return nil
}
