package raftstore

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// forceNewCluster rewrites the loaded raft state into a one-member cluster,
// the way etcd's --force-new-cluster does: entries past the commit index
// (never acknowledged to anyone) are dropped, and committed entries that
// remove every other member are appended and marked committed. On restart
// raft replays them like any other entries, so the state database, the
// members bucket and raft's configuration all end up agreeing.
func (n *Node) forceNewCluster(snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry) (*raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry, error) {
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	commit := hs.GetCommit()
	keep := ents[:0:0]
	for _, e := range ents {
		if e.GetIndex() <= commit {
			keep = append(keep, e)
		}
	}
	last := commit
	if len(keep) > 0 {
		last = keep[len(keep)-1].GetIndex()
	} else if snap != nil && snap.GetMetadata().GetIndex() > last {
		last = snap.GetMetadata().GetIndex()
	}
	// Every member raft knows of: the configuration at the snapshot plus
	// changes in the kept log (conservative: removing an absent id is a
	// no-op for raft).
	ids := map[uint64]bool{}
	for _, id := range append(snap.GetMetadata().GetConfState().GetVoters(), snap.GetMetadata().GetConfState().GetLearners()...) {
		ids[id] = true
	}
	for _, id := range append(n.confState.GetVoters(), n.confState.GetLearners()...) {
		ids[id] = true
	}
	for _, e := range keep {
		if e.GetType() == raftpb.EntryType_EntryConfChange {
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
				ids[cc.GetNodeId()] = true
			}
		}
	}
	var others []uint64
	for id := range ids {
		if id != n.cfg.ID {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	term := hs.GetTerm()
	if term == 0 {
		term = 1
	}
	var added []*raftpb.Entry
	for _, id := range others {
		last++
		data, err := proto.Marshal(&raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
		if err != nil {
			return nil, nil, nil, err
		}
		added = append(added, &raftpb.Entry{Type: raftpb.EntryType_EntryConfChange.Enum(), Term: proto.Uint64(term), Index: proto.Uint64(last), Data: data})
	}
	newHS := &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(n.cfg.ID), Commit: proto.Uint64(last)}
	if len(added) > 0 {
		// Replace any uncommitted suffix with the removals, durably.
		if err := n.logs.save(newHS, added); err != nil {
			return nil, nil, nil, fmt.Errorf("force new cluster: %w", err)
		}
	} else if err := n.logs.save(newHS, nil); err != nil {
		return nil, nil, nil, fmt.Errorf("force new cluster: %w", err)
	}
	if len(keep) < len(ents) && len(added) == 0 {
		if err := n.logs.truncateAfter(commit); err != nil {
			return nil, nil, nil, fmt.Errorf("force new cluster: %w", err)
		}
	}
	n.log.Warn("forcing a new one-member cluster from this member's data", "removed_members", len(others), "commit", last, "dropped_uncommitted", len(ents)-len(keep))
	return snap, newHS, append(keep, added...), nil
}
