package clustertest

import (
	"testing"
	"time"
)

// TestFaultsShort is the quick fault campaign of `make test`: three real
// members behind proxies, six clients, about 25 seconds of random faults
// from a seed (printed; CLUSTER_TEST_SEED reproduces it), then every
// check of the long campaign (see docs/cluster-test.md).
func TestFaultsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("fault campaign: skipped in -short mode")
	}
	if campaignBuild {
		t.Skip("the clustertest build runs the long campaign instead")
	}
	runCampaign(t, campaignConfig(t, "short", 25*time.Second, false))
}
