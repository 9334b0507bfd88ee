package raftstore

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkLogStoreSave is the raft loop's durable write per Ready: a
// few entries of a token create's size and the hard state. Log compaction
// keeps the log short, as in a member. Sub-benchmarks compare raft log
// format 1 (bbolt raft.db: one fsynced transaction, two fdatasyncs) with
// format 2 (the WAL: one record, one fdatasync); run them side by side,
// the machine's absolute timings are noisy. The WAL reports its fsyncs
// per save; count raft.db's with strace -f -c -e trace=fdatasync,fsync.
func BenchmarkLogStoreSave(b *testing.B) {
	type store interface {
		save(*raftpb.HardState, []*raftpb.Entry) error
		saveSnapshot(*raftpb.Snapshot, uint64) error
		Close() error
	}
	run := func(b *testing.B, s store, syncs func() int) {
		defer s.Close()
		data := make([]byte, 200)
		const perReady = 8
		index := uint64(0)
		before := 0
		if syncs != nil {
			before = syncs()
		}
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
		b.StopTimer()
		if syncs != nil {
			b.ReportMetric(float64(syncs()-before)/float64(b.N), "fsyncs/save")
		}
	}
	b.Run("format=1-bbolt", func(b *testing.B) {
		s, err := openV1LogStore(filepath.Join(b.TempDir(), "raft.db"))
		if err != nil {
			b.Fatal(err)
		}
		run(b, s, nil) // bbolt's syncs are not counted here
	})
	b.Run("format=2-wal", func(b *testing.B) {
		s, err := openLogStore(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)), 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := s.load(); err != nil {
			b.Fatal(err)
		}
		run(b, s, s.w.Syncs)
	})
}
