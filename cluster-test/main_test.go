package clustertest

import (
	"fmt"
	"os"
	"testing"

	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// bin holds the binaries built once for every test in this package.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
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
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	return c
}
