#!/usr/bin/env bash
# Runs tokenstore's benchmarks: the in-process authentication path (Go
# benchmarks, 5 runs each so benchstat can compare runs) and then the
# load generator against a three-process cluster on 127.0.0.1
# (cluster-test/cmd/tsbench). Arguments are passed to tsbench, e.g.
#
#   ./scripts/bench.sh -duration 5s -rounds 3
#
# tsbench builds its own binaries into a temp dir; `make bench` runs this
# after `make build`. docs/BENCHMARKS.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== in-process: go test -bench (server/state, server/token)"
go test -run '^$' -bench 'BenchmarkAuthenticate|BenchmarkParseAndHash' -benchmem -count 5 ./server/state/ ./server/token/

echo
echo "== cluster: go run ./cluster-test/cmd/tsbench $*"
go run ./cluster-test/cmd/tsbench "$@"
