package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/raftstore/transport"
	"github.com/tokenstore/tokenstore/server/discovery"
)

// plan is how a member starts: who it is and how it gets a cluster.
type plan struct {
	id, clusterID uint64
	// initial bootstraps a new cluster (new data directory only).
	initial []*raftstorev1.Member
	// join lists the members of an existing cluster this one joined.
	join []*raftstorev1.Member
}

// hasRaftState reports whether dir holds a raft log (the WAL, or a raft.db
// a start will migrate).
func hasRaftState(dir string) bool {
	return raftstore.HasRaftLog(dir)
}

// makePlan decides how this member starts. In order:
//   - a data directory with an identity restarts as that member (static
//     flags must describe the same cluster);
//   - --initial-cluster-state existing asks the listed members to take it in;
//   - with --join, gossip finds an existing cluster to join, or with
//     --bootstrap-expect N, N members that see each other and no cluster
//     bootstrap exactly one;
//   - otherwise --initial-cluster bootstraps a new cluster.
func (s *Server) makePlan(ctx context.Context, disc *discovery.Discovery) (plan, error) {
	cfg := s.cfg
	ident, err := raftstore.ReadIdentity(cfg.DataDir)
	if err != nil {
		return plan{}, err
	}
	static, err := cfg.Members()
	if err != nil {
		return plan{}, err
	}
	staticCID := raftstore.ClusterID(cfg.InitialClusterToken, static)
	staticID := raftstore.MemberID(cfg.InitialClusterToken, cfg.Name)

	if ident != nil && hasRaftState(cfg.DataDir) {
		if ident.GetName() != cfg.Name {
			return plan{}, fmt.Errorf("data directory %s belongs to member %q, not %q", cfg.DataDir, ident.GetName(), cfg.Name)
		}
		explicitStatic := cfg.InitialCluster != "" && len(cfg.Join) == 0 && cfg.InitialClusterState == "new"
		if explicitStatic && ident.GetClusterId() != staticCID {
			return plan{}, fmt.Errorf("data directory %s belongs to cluster %016x, but the flags describe cluster %016x (different --initial-cluster or --initial-cluster-token)",
				cfg.DataDir, ident.GetClusterId(), staticCID)
		}
		return plan{id: ident.GetId(), clusterID: ident.GetClusterId()}, nil
	}
	if cfg.InitialClusterState == "existing" {
		var addrs []string
		for _, m := range static {
			if m.GetName() != cfg.Name {
				addrs = append(addrs, m.GetPeerAddress())
			}
		}
		return s.joinCluster(ctx, addrs, 0)
	}
	if disc != nil && len(cfg.Join) > 0 {
		return s.discover(ctx, disc)
	}
	return plan{id: staticID, clusterID: staticCID, initial: static}, nil
}

// joinCluster asks the members at addrs, in turn, to add this member.
func (s *Server) joinCluster(ctx context.Context, addrs []string, clusterID uint64) (plan, error) {
	req := &raftstorev1.JoinRequest{ClusterId: clusterID, Name: s.cfg.Name, PeerAddress: s.cfg.AdvertisePeer, Preadded: clusterID == 0}
	var errs []error
	for _, a := range addrs {
		jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := transport.Join(jctx, a, req, s.sec.peerDialOptions()...)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		s.log.Info("joined existing cluster as a learner", "via", a, "id", fmt.Sprintf("%016x", resp.GetMemberId()), "cluster", fmt.Sprintf("%016x", resp.GetClusterId()))
		return plan{id: resp.GetMemberId(), clusterID: resp.GetClusterId(), join: resp.GetMembers()}, nil
	}
	return plan{}, fmt.Errorf("join cluster: %w", errors.Join(errs...))
}

// discover waits on gossip until there is a cluster to join or, with
// --bootstrap-expect, enough cluster-less members to bootstrap one.
func (s *Server) discover(ctx context.Context, disc *discovery.Discovery) (plan, error) {
	logged := time.Time{}
	for {
		peers := disc.Peers()
		clusters := map[uint64][]string{}
		var fresh []discovery.Peer
		for _, p := range peers {
			if p.State != "alive" {
				continue
			}
			if p.ClusterID != 0 {
				clusters[p.ClusterID] = append(clusters[p.ClusterID], p.PeerAddr)
			} else {
				fresh = append(fresh, p)
			}
		}
		// A founding member that was slower than the others sees their
		// cluster already formed: it is one of the set and must bootstrap
		// with it, not ask to join (the cluster would try to replace it).
		if s.cfg.BootstrapExpect > 0 && len(clusters) == 1 {
			var alive []discovery.Peer
			for _, p := range peers {
				if p.State == "alive" {
					alive = append(alive, p)
				}
			}
			if len(alive) >= s.cfg.BootstrapExpect {
				if p, ok := s.bootstrapPlan(alive); ok {
					if _, formed := clusters[p.clusterID]; formed {
						return p, nil
					}
				}
			}
		}
		switch {
		case len(clusters) > 1:
			if time.Since(logged) > 10*time.Second {
				s.log.Error("gossip shows more than one cluster; refusing to pick one", "clusters", len(clusters))
				logged = time.Now()
			}
		case len(clusters) == 1:
			for cid, addrs := range clusters {
				p, err := s.joinCluster(ctx, addrs, cid)
				if err == nil {
					return p, nil
				}
				s.log.Warn("joining the cluster found through gossip failed; retrying", "err", err)
			}
		case s.cfg.BootstrapExpect > 0 && len(fresh) >= s.cfg.BootstrapExpect && s.cfg.TestBootstrapLate:
			// Test hook: wait for the peers' cluster (handled above).
		case s.cfg.BootstrapExpect > 0 && len(fresh) >= s.cfg.BootstrapExpect:
			if p, ok := s.bootstrapPlan(fresh); ok {
				return p, nil
			}
			// This member is not among the first N by name: wait for
			// them to form the cluster, then join it.
		default:
			if time.Since(logged) > 10*time.Second {
				s.log.Info("waiting for gossip to show a cluster to join", "seen", len(peers), "bootstrap_expect", s.cfg.BootstrapExpect)
				logged = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return plan{}, fmt.Errorf("waiting for a cluster: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// bootstrapPlan forms the new cluster from the first BootstrapExpect
// cluster-less members by name. Every one of them computes the same set,
// so they agree on the ids without talking: ids derive from the token, the
// names and the set's nonces (fresh per start, so ids are never reused).
func (s *Server) bootstrapPlan(fresh []discovery.Peer) (plan, bool) {
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Name < fresh[j].Name })
	set := fresh[:s.cfg.BootstrapExpect]
	h := sha256.New()
	in := false
	for _, p := range set {
		fmt.Fprintf(h, "%s\x00%s\x00", p.Name, p.Nonce)
		in = in || p.Name == s.cfg.Name
	}
	if !in {
		return plan{}, false
	}
	seed := hex.EncodeToString(h.Sum(nil))
	token := s.cfg.InitialClusterToken + "\x00" + seed
	var members []*raftstorev1.Member
	var names []string
	for _, p := range set {
		members = append(members, &raftstorev1.Member{Name: p.Name, Id: raftstore.MemberID(token, p.Name), PeerAddress: p.PeerAddr})
		names = append(names, p.Name)
	}
	s.log.Info("bootstrapping a new cluster with the members gossip shows", "members", strings.Join(names, ","))
	return plan{
		id:        raftstore.MemberID(token, s.cfg.Name),
		clusterID: raftstore.ClusterID(token, members),
		initial:   members,
	}, true
}

func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
