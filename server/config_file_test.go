package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFileLargeNumbersAndLists: a --config file may hold integers of
// any size as written (a float64 round trip would turn 1048576 into
// "1.048576e+06") and lists as YAML sequences, as a Kubernetes ConfigMap
// naturally does.
func TestConfigFileLargeNumbersAndLists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	content := "max-request-bytes: 1048576\nsnapshot-count: 100000000\nlisten-gossip: 127.0.0.1:23820\njoin: [a.example:23820, b.example:23820]\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parse(t, nil, file)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxRequestBytes != 1048576 || c.SnapshotCount != 100000000 {
		t.Errorf("max-request-bytes %d, snapshot-count %d", c.MaxRequestBytes, c.SnapshotCount)
	}
	if got := strings.Join(c.Join, " "); got != "a.example:23820 b.example:23820" {
		t.Errorf("join %q", got)
	}
}
