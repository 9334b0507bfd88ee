package raftstore

import (
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkLogStoreSave is the raft loop's durable write per Ready: a
// few entries of a token create's size and the hard state, one fsynced
// transaction. Log compaction keeps the log short, as in a member.
func BenchmarkLogStoreSave(b *testing.B) {
	s, err := openLogStore(filepath.Join(b.TempDir(), "raft.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 200)
	const perReady = 8
	index := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ents := make([]*raftpb.Entry, perReady)
		for j := range ents {
			index++
			ents[j] = &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(index), Data: data}
		}
		if err := s.save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(index)}, ents); err != nil {
			b.Fatal(err)
		}
		if index%10000 < perReady && index > 5000 {
			snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(1)}}
			if err := s.saveSnapshot(snap, index-5000); err != nil {
				b.Fatal(err)
			}
		}
	}
}
