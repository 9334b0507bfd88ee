//go:build clustertest

package clustertest

import (
	"testing"
	"time"
)

// TestOverloadTenTimesCapacityFor30s is the overload test: the
// leader admits --max-inflight 64 requests; after a baseline at that
// concurrency, ten times as many clients, retrying every refusal at once,
// run for 30 s. The process stays up with bounded memory, no election
// happens, admitted requests keep a bounded p99, health answers throughout,
// and afterwards throughput returns to the baseline.
func TestOverloadTenTimesCapacityFor30s(t *testing.T) {
	runOverload(t, overloadPlan{
		maxInflight: 64, factor: 10,
		baseline: 5 * time.Second, overload: 30 * time.Second, recovery: 5 * time.Second,
		maxAdmittedP99: time.Second, minRecovery: 0.8, maxRSSGrowth: 256 << 20,
	})
}
