#!/usr/bin/env bash
# Runs tokenstore's benchmarks (docs/BENCHMARKS.md explains every figure):
#
#  1. the in-process authentication and authorization paths (Go
#     benchmarks, 5 runs each so benchstat can compare runs), and the
#     lastUsedAt tracker's cost per authentication (tracking on vs off in
#     alternating chunks, issue 3);
#  2. tsbench (cluster-test/cmd/tsbench) against a three-process cluster on
#     127.0.0.1: bounded vs linearizable reads, creates, lastUsedAt
#     (tracking on vs off, batched register vs a naive CAS per
#     authentication), and at a follower TokenReview over HTTP keep-alive,
#     imported Rancher scrypt tokens vs native ones, and SubjectAccessReview
#     with 10,000 bindings and 1,000 roles;
#  3. the side-by-side comparison with etcd (bench/cmd/compare, its own Go
#     module so the product never depends on etcd): reads, hot-token
#     lastUsedAt, writes and failover, tokenstore and etcd alternating.
#
#   ./scripts/bench.sh                       # all three, default sizes (about 10 minutes)
#   ./scripts/bench.sh -duration 5s -rounds 3  # arguments go to tsbench, as before
#   COMPARE_ARGS='-rounds 3' ./scripts/bench.sh  # and COMPARE_ARGS to the comparison
#   ./scripts/bench.sh -scale                # only the 1,000,000-token scale run (make bench-scale)
#
# Results land on stdout; the comparison's JSON and the chart go to
# $BENCH_OUT (default $TMPDIR/tokenstore-bench), the chart as benchmarks.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-${TMPDIR:-/tmp}/tokenstore-bench}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ "${1:-}" == "-scale" ]]; then
	echo "== scale: (cd bench && go run ./cmd/compare -phases scale ${COMPARE_ARGS:-})"
	(cd bench && go run ./cmd/compare -phases scale -json "$out/scale.json" ${COMPARE_ARGS:-})
	(cd bench && go run ./cmd/chart -in "$out/compare.json" -scale "$out/scale.json" -out "$out/benchmarks.png") 2>/dev/null ||
		(cd bench && go run ./cmd/chart -in "$out/scale.json" -out "$out/benchmarks.png")
	exit 0
fi

echo "== in-process: go test -bench (server/state, server/token, server/rbac)"
go test -run '^$' -bench 'BenchmarkAuthenticate|BenchmarkParseAndHash|BenchmarkAuthorize$|BenchmarkAuthorizeThreadCPU' -benchmem -count 5 ./server/state/ ./server/token/ ./server/rbac/
echo
echo "== in-process: lastUsedAt tracking on vs off, paired (server)"
go test -run '^$' -bench 'BenchmarkAuthenticateTracking' -benchmem -count 5 ./server/

echo
echo "== JWT (OIDC): in-process verification, and authentications/s at a follower"
go test -run '^$' -bench 'BenchmarkVerify' -benchmem -count 5 ./server/oidc/
go test -run '^$' -bench 'BenchmarkOIDCFollower' -benchtime 20000x ./cluster-test/

echo
echo "== cluster: go run ./cluster-test/cmd/tsbench $*"
go run ./cluster-test/cmd/tsbench "$@"

echo
echo "== side by side with etcd: (cd bench && go run ./cmd/compare ${COMPARE_ARGS:-})"
(cd bench && go run ./cmd/compare -json "$out/compare.json" ${COMPARE_ARGS:-})
(cd bench && go run ./cmd/chart -in "$out/compare.json" -out "$out/benchmarks.png")
echo "chart: $out/benchmarks.png"
