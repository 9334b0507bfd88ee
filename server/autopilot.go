package server

import (
	"context"
	"time"
)

// cleanupDeadLoop removes members that gossip has reported dead for
// --autopilot-cleanup-dead-after. Only the leader acts. It is off by
// default: removing a member is an operator's decision unless they opt in
// (a voter that is dead but still a member silently lowers the cluster's
// failure tolerance, which `tokenctl member list` and the metrics show).
// The quorum check of RemoveMember still applies.
func (s *Server) cleanupDeadLoop(ctx context.Context) {
	defer s.wg.Done()
	deadSince := map[uint64]time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.node.Leader() != s.node.ID() {
			clear(deadSince)
			continue
		}
		infos, err := s.node.Membership()
		if err != nil {
			continue
		}
		now := time.Now()
		seen := map[uint64]bool{}
		for _, m := range infos {
			if m.GetId() == s.node.ID() || s.disc.Health(m.GetName()) != "dead" {
				continue
			}
			seen[m.GetId()] = true
			since, ok := deadSince[m.GetId()]
			if !ok {
				deadSince[m.GetId()] = now
				continue
			}
			if now.Sub(since) < s.cfg.CleanupDeadAfter {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.node.RemoveMember(rctx, m.GetId(), false)
			cancel()
			if err != nil {
				s.log.Warn("autopilot could not remove dead member", "member", m.GetName(), "err", err)
				continue
			}
			s.log.Info("autopilot removed member dead longer than --autopilot-cleanup-dead-after", "member", m.GetName(), "dead_for", now.Sub(since).Round(time.Second))
			delete(deadSince, m.GetId())
		}
		for id := range deadSince {
			if !seen[id] {
				delete(deadSince, id)
			}
		}
	}
}
