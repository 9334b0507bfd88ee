// Package loadgen is the measuring machinery of tokenstore's load
// generators: closed-loop rounds that time and check every request,
// per-process CPU accounting from /proc, the round and median tables, and
// the tokenstore workloads (token creation, checked Authenticate and
// CreateToken calls). tsbench uses it against tokenstore alone; the etcd
// comparison in the separate bench/ module uses it for both systems, so
// the two are measured and reported by the same code.
//
// A round's clients share nothing on the hot path: each keeps its own tally
// and latencies, merged once the round is over. Nothing here sends to any
// address but the members it is given.
package loadgen
