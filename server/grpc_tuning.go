package server

import (
	"runtime"

	"google.golang.org/grpc"
)

// clientServerTuning are the client gRPC server's performance options.
//
// Stream workers: without them grpc-go starts a goroutine per request,
// whose stack starts small and grows (morestack, copystack) while the
// request is decoded, answered and encoded; under read load that was 10 to
// 15% of a follower's CPU (docs/BENCHMARKS.md). A pool of workers keeps
// stacks that have already grown. A request that finds every worker busy
// still gets its own goroutine at once (grpc-go never queues it), so a
// handler that waits (a linearizable read) delays no other request.
//
// The pool must cover a burst, not the CPUs: one read of a connection
// hands out every request it holds before any worker comes back. With 4
// workers per CPU, 64 clients over 4 connections still overflowed into
// fresh goroutines and stack growth stayed at 10% of a follower's CPU;
// with 32 per CPU it fell to 0.2% and CPU per read from 26 to 22-23 µs
// (perf, docs/BENCHMARKS.md "Issue 9, fourth pass"). An idle worker costs
// its stack, a few KiB.
//
// Fixed flow-control windows: setting them turns off grpc-go's
// bandwidth-delay estimation, which otherwise pings every client once per
// round trip for as long as requests flow (a TLS record, a syscall and a
// wakeup on both sides per ping, on requests of a few hundred bytes).
// 1 MiB lets a client stream a large request without waiting for window
// updates and bounds what one connection can have buffered here.
func clientServerTuning() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(32 * runtime.GOMAXPROCS(0))),
		grpc.InitialWindowSize(clientWindowBytes),
		grpc.InitialConnWindowSize(clientWindowBytes),
	}
}

// clientWindowBytes is the per-stream and per-connection receive window of
// client connections.
const clientWindowBytes = 1 << 20
