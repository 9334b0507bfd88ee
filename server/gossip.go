package server

import (
	"runtime/debug"

	"github.com/tokenstore/tokenstore/server/discovery"
)

// onGossip points raft traffic at a member's new peer address when gossip
// shows it moved (a pod restarted with a new IP): no membership change is
// needed, the member's identity is its id.
func (s *Server) onGossip(p discovery.Peer) {
	if s.node == nil || p.State == "dead" || p.ClusterID != s.node.ClusterID() || p.MemberID == 0 || p.MemberID == s.node.ID() {
		return
	}
	s.node.UpdatePeerAddress(p.MemberID, p.PeerAddr)
}

// refreshPeerAddresses applies what gossip already knows, once the node
// exists.
func (s *Server) refreshPeerAddresses() {
	for _, p := range s.disc.Peers() {
		s.onGossip(p)
	}
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
