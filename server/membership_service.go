package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
)

// membership answers with the final membership as applied here, each
// member asked about itself in parallel (one second each at most).
func (s *Server) membership(ctx context.Context) ([]*tokenstorev1.Member, int32, error) {
	infos, err := s.node.Membership()
	if err != nil {
		return nil, 0, rpcError("membership", err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].GetName() < infos[j].GetName() })
	out := make([]*tokenstorev1.Member, len(infos))
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	commit := s.node.Status().CommitIndex
	leader := s.node.Leader()
	var wg sync.WaitGroup
	for i, m := range infos {
		out[i] = &tokenstorev1.Member{Name: m.GetName(), Id: m.GetId(), PeerAddress: m.GetPeerAddress(), Learner: m.Learner, Leader: m.GetId() == leader, Health: "unknown"}
		if s.disc != nil {
			out[i].Health = s.disc.Health(m.GetName())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.node.PeerStatus(qctx, m.GetId())
			if err != nil || st.ID != m.GetId() {
				return
			}
			out[i].Reachable = true
			out[i].ClientAddress = st.ClientAddress
			out[i].PeerAddress = st.PeerAddress
			out[i].AppliedIndex = st.AppliedIndex
			if commit > st.AppliedIndex {
				out[i].Lag = commit - st.AppliedIndex
			}
		}()
	}
	wg.Wait()
	var voters, up int32
	for _, m := range out {
		if !m.GetLearner() {
			voters++
			if m.GetReachable() {
				up++
			}
		}
	}
	// Voters that may still fail: reachable ones beyond a quorum.
	tolerance := up - (voters/2 + 1)
	return out, tolerance, nil
}

func (c *clusterService) ListMembers(ctx context.Context, _ *tokenstorev1.ListMembersRequest) (*tokenstorev1.ListMembersResponse, error) {
	ms, tol, err := c.s.membership(ctx)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.ListMembersResponse{Header: c.s.header(c.s.node.AppliedIndex()), Members: ms, FailureTolerance: tol, ClusterId: c.s.node.ClusterID()}, nil
}

// memberByName finds a member in the applied membership.
func (s *Server) memberByName(name string) (raftstore.MemberInfo, error) {
	infos, err := s.node.Membership()
	if err != nil {
		return raftstore.MemberInfo{}, rpcError("membership", err)
	}
	for _, m := range infos {
		if m.GetName() == name {
			return m, nil
		}
	}
	return raftstore.MemberInfo{}, status.Errorf(codes.NotFound, "no member named %q", name)
}

func membershipError(what string, err error) error {
	switch {
	case errors.Is(err, raftstore.ErrQuorumAtRisk):
		return status.Errorf(codes.FailedPrecondition, "%s: %v (use --force to remove anyway)", what, err)
	case errors.Is(err, raftstore.ErrMemberNotFound):
		return status.Errorf(codes.NotFound, "%s: %v", what, err)
	}
	return rpcError(what, err)
}

func (c *clusterService) AddMember(ctx context.Context, req *tokenstorev1.AddMemberRequest) (*tokenstorev1.AddMemberResponse, error) {
	s := c.s
	if req.GetName() == "" || req.GetPeerAddress() == "" {
		return nil, invalid("name and peer_address are required")
	}
	m := &raftstorev1.Member{Name: req.GetName(), Id: raftstore.NewMemberID(), PeerAddress: req.GetPeerAddress()}
	if existing, err := s.memberByName(req.GetName()); err == nil {
		if existing.GetPeerAddress() != req.GetPeerAddress() {
			return nil, status.Errorf(codes.AlreadyExists, "member %q exists with peer address %s", req.GetName(), existing.GetPeerAddress())
		}
		m = existing.Member // idempotent: the same add again
	}
	if err := s.node.AddMember(ctx, m, req.GetLearner()); err != nil {
		return nil, membershipError("add member "+req.GetName(), err)
	}
	ms, _, err := s.membership(ctx)
	if err != nil {
		return nil, err
	}
	resp := &tokenstorev1.AddMemberResponse{Header: s.header(s.node.AppliedIndex()), Members: ms}
	for _, x := range ms {
		if x.GetId() == m.GetId() {
			resp.Member = x
		}
	}
	return resp, nil
}

func (c *clusterService) PromoteMember(ctx context.Context, req *tokenstorev1.PromoteMemberRequest) (*tokenstorev1.PromoteMemberResponse, error) {
	s := c.s
	m, err := s.memberByName(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.node.PromoteMember(ctx, m.GetId()); err != nil {
		return nil, membershipError("promote member "+req.GetName(), err)
	}
	ms, _, err := s.membership(ctx)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.PromoteMemberResponse{Header: s.header(s.node.AppliedIndex()), Members: ms}, nil
}

func (c *clusterService) RemoveMember(ctx context.Context, req *tokenstorev1.RemoveMemberRequest) (*tokenstorev1.RemoveMemberResponse, error) {
	s := c.s
	m, err := s.memberByName(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.node.RemoveMember(ctx, m.GetId(), req.GetForce()); err != nil {
		return nil, membershipError("remove member "+req.GetName(), err)
	}
	ms, _, err := s.membership(ctx)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.RemoveMemberResponse{Header: s.header(s.node.AppliedIndex()), Members: ms}, nil
}

func (c *clusterService) TransferLeadership(ctx context.Context, req *tokenstorev1.TransferLeadershipRequest) (*tokenstorev1.TransferLeadershipResponse, error) {
	s := c.s
	var target uint64
	if req.GetName() != "" {
		m, err := s.memberByName(req.GetName())
		if err != nil {
			return nil, err
		}
		if m.Learner {
			return nil, status.Errorf(codes.FailedPrecondition, "member %q is a learner; promote it first", req.GetName())
		}
		target = m.GetId()
	} else {
		ms, _, err := s.membership(ctx)
		if err != nil {
			return nil, err
		}
		var best uint64
		for _, m := range ms {
			if !m.GetLearner() && !m.GetLeader() && m.GetReachable() && (target == 0 || m.GetAppliedIndex() > best) {
				target, best = m.GetId(), m.GetAppliedIndex()
			}
		}
		if target == 0 {
			return nil, status.Error(codes.FailedPrecondition, "no reachable voter to hand leadership to")
		}
	}
	if s.node.Leader() != target {
		if err := s.node.TransferLeadership(ctx, target); err != nil {
			return nil, rpcError("transfer leadership", err)
		}
	}
	name, _ := s.memberByIDName(target)
	return &tokenstorev1.TransferLeadershipResponse{Header: s.header(s.node.AppliedIndex()), Leader: name}, nil
}

func (s *Server) memberByIDName(id uint64) (string, error) {
	infos, err := s.node.Membership()
	if err != nil {
		return "", err
	}
	for _, m := range infos {
		if m.GetId() == id {
			return m.GetName(), nil
		}
	}
	return "", fmt.Errorf("no member %016x", id)
}

// snapshotWriter turns database bytes into stream messages.
type snapshotWriter struct {
	stream tokenstorev1.ClusterService_SnapshotServer
	sum    func([]byte)
}

func (w snapshotWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 1 << 20 {
		end := min(off+1<<20, len(p))
		if err := w.stream.Send(&tokenstorev1.SnapshotResponse{Chunk: p[off:end]}); err != nil {
			return off, err
		}
	}
	w.sum(p)
	return len(p), nil
}

func (c *clusterService) Snapshot(_ *tokenstorev1.SnapshotRequest, stream tokenstorev1.ClusterService_SnapshotServer) error {
	h := sha256.New()
	w := snapshotWriter{stream: stream, sum: func(p []byte) { h.Write(p) }}
	err := c.s.node.SaveSnapshot(w, func(rev uint64, size int64) error {
		return stream.Send(&tokenstorev1.SnapshotResponse{Revision: rev, Size: uint64(size)})
	})
	if err != nil {
		return rpcError("snapshot", err)
	}
	return stream.Send(&tokenstorev1.SnapshotResponse{Sha256: h.Sum(nil)})
}

func (c *clusterService) StateHash(ctx context.Context, req *tokenstorev1.StateHashRequest) (*tokenstorev1.StateHashResponse, error) {
	if err := c.s.readGate(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	sum, rev, err := c.s.node.StateHash()
	if err != nil {
		return nil, rpcError("state hash", err)
	}
	return &tokenstorev1.StateHashResponse{Header: c.s.header(rev), Sha256: sum}, nil
}
