//go:build clustertest

package clustertest

import (
	"testing"
	"time"
)

// campaignBuild is true in the clustertest build.
const campaignBuild = true

// TestCampaign is the long random fault campaign of `make cluster-test`
// (3 minutes by default; CLUSTER_TEST_DURATION=30m for a long one).
func TestCampaign(t *testing.T) {
	runCampaign(t, campaignConfig(t, "campaign", 3*time.Minute, true))
}

// TestCampaignFiveMembers runs a five-member cluster for a third of the
// campaign's duration: more links, minority partitions of two.
func TestCampaignFiveMembers(t *testing.T) {
	cfg := campaignConfig(t, "campaign5", 3*time.Minute, true)
	cfg.Duration /= 3
	cfg.Members = 5
	cfg.Clients = 8
	runCampaign(t, cfg)
}
