package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/lastused"
)

// forwardLastUsed is the peer Forward kind of lastUsedAt reports.
const forwardLastUsed = "lastused/v1"

// newLastUsedTracker wires the lastUsedAt tracker to raft: followers report
// to the leader over the peer transport, the leader proposes batches.
func (s *Server) newLastUsedTracker() *lastused.Tracker {
	t := lastused.New(lastused.Config{
		Interval:    s.cfg.LastUsedInterval,
		Granularity: s.cfg.LastUsedGranularity,
		MaxPending:  s.cfg.LastUsedMaxPending,
		Stored:      s.state.LastUsed,
		IsLeader:    func() bool { return s.node.Leader() == s.node.ID() },
		Propose: func(ctx context.Context, r *raftstorev1.RecordLastUsed) error {
			b, err := proto.Marshal(&raftstorev1.Command{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: r}})
			if err != nil {
				return err
			}
			_, err = s.node.Propose(ctx, b)
			return err
		},
		Report: func(ctx context.Context, r *raftstorev1.RecordLastUsed) error {
			leader := s.node.Leader()
			if leader == 0 {
				return errors.New("no leader known")
			}
			b, err := proto.Marshal(r)
			if err != nil {
				return err
			}
			_, err = s.node.Forward(ctx, leader, forwardLastUsed, b)
			return err
		},
		EntryProposed: func(n int) { s.metrics.lastUsedPerEntry.Observe(float64(n)) },
		Logger:        s.log,
	})
	s.node.HandleForwards(forwardLastUsed, func(_ context.Context, _ uint64, payload []byte) ([]byte, error) {
		r := &raftstorev1.RecordLastUsed{}
		if err := proto.Unmarshal(payload, r); err != nil {
			return nil, fmt.Errorf("decode lastUsedAt report: %w", err)
		}
		t.Merge(r)
		return nil, nil
	})
	return t
}
