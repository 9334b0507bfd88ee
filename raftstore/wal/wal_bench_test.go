package wal

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkOpen is a restart's replay of one default-size (64 MiB,
// preallocated) segment holding a few MiB of records: the whole file is
// read and the zeroed space after the records scanned for a valid record.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 200)
	for i := uint64(1); i <= 16000; i += 8 {
		es := make([]*raftpb.Entry, 8)
		for j := range es {
			es[j] = ent(1, i+uint64(j), string(data))
		}
		if err := w.Save(hs(1, i), es); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, es, err := w.Load(); err != nil || len(es) != 16000 {
			b.Fatalf("%d entries, %v", len(es), err)
		}
		w.Close()
	}
}
