package raftstore_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkProposeAtFollower measures proposals made at a follower, which
// raft forwards to the leader (where undelivered.go steps each one), with
// 64 proposers in flight: ns/op is the inverse of throughput.
func BenchmarkProposeAtFollower(b *testing.B) {
	c := newCluster(b, 3, 1<<20)
	f := c.follower()
	var n atomic.Uint64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := f.node.Propose(ctx, []byte("k"+strconv.FormatUint(n.Add(1), 10)+"=v"))
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
