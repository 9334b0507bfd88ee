package server

import (
	"context"
	"sort"
	"sync"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
)

// clusterService implements tokenstorev1.ClusterServiceServer.
type clusterService struct {
	tokenstorev1.UnimplementedClusterServiceServer
	s *Server
}

// Status asks every member about itself in parallel; a member that does
// not answer within a second is listed unreachable with the reason.
func (c *clusterService) Status(ctx context.Context, _ *tokenstorev1.StatusRequest) (*tokenstorev1.StatusResponse, error) {
	s := c.s
	members, err := s.node.Members()
	if err != nil {
		return nil, rpcError("status", err)
	}
	sort.Slice(members, func(i, j int) bool { return members[i].GetName() < members[j].GetName() })
	resp := &tokenstorev1.StatusResponse{
		Header:    s.header(s.node.AppliedIndex()),
		ClusterId: s.node.ClusterID(),
		LeaderId:  s.node.Leader(),
		Members:   make([]*tokenstorev1.MemberStatus, len(members)),
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	names := map[uint64]string{}
	for _, m := range members {
		names[m.GetId()] = m.GetName()
	}
	var wg sync.WaitGroup
	for i, m := range members {
		if m.GetId() == resp.LeaderId {
			resp.LeaderName = m.GetName()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms := &tokenstorev1.MemberStatus{Name: m.GetName(), Id: m.GetId(), PeerAddress: m.GetPeerAddress()}
			st, err := s.node.PeerStatus(qctx, m.GetId())
			if err != nil {
				ms.Error = err.Error()
			} else {
				fillMemberStatus(ms, st, names)
			}
			resp.Members[i] = ms
		}()
	}
	wg.Wait()
	return resp, nil
}

func fillMemberStatus(ms *tokenstorev1.MemberStatus, st *raftstore.MemberStatus, names map[uint64]string) {
	ms.Reachable = true
	ms.ClientAddress = st.ClientAddress
	if st.PeerAddress != "" {
		ms.PeerAddress = st.PeerAddress
	}
	ms.Term = st.Term
	ms.AppliedIndex = st.AppliedIndex
	ms.CommitIndex = st.CommitIndex
	ms.ServingReads = st.ServingReads
	ms.Clock = memberClock(st.Clock, names)
	switch {
	case st.Learner:
		ms.Role = tokenstorev1.MemberRole_MEMBER_ROLE_LEARNER
	case st.State == "leader":
		ms.Role = tokenstorev1.MemberRole_MEMBER_ROLE_LEADER
	case st.State == "candidate", st.State == "precandidate":
		ms.Role = tokenstorev1.MemberRole_MEMBER_ROLE_CANDIDATE
	default:
		ms.Role = tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER
	}
}
