package clustertest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// bin holds the binaries built once for every test in this package.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// CLUSTER_TEST_BIN runs the tests against other binaries (an older
	// build, to see a test fail without a change) instead of this tree's.
	if dir := os.Getenv("CLUSTER_TEST_BIN"); dir != "" {
		bin = dir
		return m.Run()
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tokenstore-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := harness.Build(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin = dir
	return m.Run()
}

func newCluster(t *testing.T, extra ...string) *harness.Cluster {
	t.Helper()
	c, err := harness.New(bin, t.TempDir(), harness.Options{Size: 3, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails(40))
		}
		c.Stop()
	})
	useCluster(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	return c
}

// ctlClusters maps a test's name to the cluster its tokenctl runs talk to
// (their credentials depend on the cluster's CA).
var ctlClusters sync.Map

// useCluster makes c the cluster whose credentials tokenctl(ctx, t, ...)
// uses in t and its subtests; newCluster calls it.
func useCluster(t *testing.T, c *harness.Cluster) {
	ctlClusters.Store(t.Name(), c)
	t.Cleanup(func() { ctlClusters.CompareAndDelete(t.Name(), c) })
}

// ctlCluster is the cluster useCluster set for t or the nearest parent test.
func ctlCluster(t *testing.T) *harness.Cluster {
	t.Helper()
	for name := t.Name(); ; {
		if c, ok := ctlClusters.Load(name); ok {
			return c.(*harness.Cluster)
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			t.Fatal("tokenctl: no cluster for this test (newCluster, or useCluster for one made with harness.New)")
		}
		name = name[:i]
	}
}
