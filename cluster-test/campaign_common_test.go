package clustertest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/cluster-test/campaign"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// campaignConfig is the configuration shared by the fault campaigns, with
// the environment's overrides:
//
//	CLUSTER_TEST_SEED      seed of the fault schedule and the clients (default: time)
//	CLUSTER_TEST_DURATION  how long faults and clients run (the tagged campaign only)
//	CLUSTER_TEST_FAULTS    comma-separated faults (default: all)
//	CLUSTER_TEST_KEEP      1: keep cluster-test/out/<run>/ even when all checks pass
//	CLUSTER_TEST_STRICT    1: violations of known, unfixed server issues fail the run too
//	CLUSTER_TEST_BIN       directory of a tokenstore binary to test instead of this tree's
func campaignConfig(t *testing.T, name string, duration time.Duration, durationFromEnv bool) campaign.Config {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := campaign.Config{
		Bin: bin, Out: filepath.Join(root, "cluster-test", "out"), Name: name, Duration: duration,
		Log: func(format string, args ...any) { t.Logf(format, args...) },
	}
	if v := os.Getenv("CLUSTER_TEST_BIN"); v != "" {
		cfg.Bin = v
	}
	if v := os.Getenv("CLUSTER_TEST_SEED"); v != "" {
		if cfg.Seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("CLUSTER_TEST_SEED: %v", err)
		}
	}
	if v := os.Getenv("CLUSTER_TEST_DURATION"); v != "" && durationFromEnv {
		if cfg.Duration, err = time.ParseDuration(v); err != nil {
			t.Fatalf("CLUSTER_TEST_DURATION: %v", err)
		}
	}
	if cfg.Faults, err = campaign.ParseFaults(os.Getenv("CLUSTER_TEST_FAULTS")); err != nil {
		t.Fatalf("CLUSTER_TEST_FAULTS: %v", err)
	}
	cfg.Keep = os.Getenv("CLUSTER_TEST_KEEP") == "1"
	cfg.Strict = os.Getenv("CLUSTER_TEST_STRICT") == "1"
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	return cfg
}

// runCampaign runs cfg and fails t with the report when a check failed.
func runCampaign(t *testing.T, cfg campaign.Config) {
	t.Helper()
	t.Logf("seed %d (the same schedule again: CLUSTER_TEST_SEED=%d, run %s)", cfg.Seed, cfg.Seed, t.Name())
	res, err := campaign.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("campaign could not run: %v", err)
	}
	t.Log("\n" + res.Summary())
	if res.Failed() {
		t.Fatalf("campaign found violations (seed %d); history, visualisation, data and logs in %s", cfg.Seed, res.Dir)
	}
}
