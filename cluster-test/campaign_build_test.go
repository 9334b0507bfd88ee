//go:build !clustertest

package clustertest

// campaignBuild is true in the clustertest build (campaign_test.go).
const campaignBuild = false
