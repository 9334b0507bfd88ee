package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args []string, file string) (Config, error) {
	t.Helper()
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, LoadEnvAndFile(fs, file)
}

// TestConfigPrecedence: command line over environment over file over
// default.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("name: fromfile\nmax-staleness: 7s\nsnapshot-count: 42\nlog-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKENSTORE_MAX_STALENESS", "9s")
	t.Setenv("TOKENSTORE_LOG_LEVEL", "warn")
	c, err := parse(t, []string{"--log-level", "error"}, file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "fromfile" || c.SnapshotCount != 42 {
		t.Errorf("file values not applied: name %q snapshot-count %d", c.Name, c.SnapshotCount)
	}
	if c.MaxStaleness != 9*time.Second {
		t.Errorf("environment should win over the file: max-staleness %v", c.MaxStaleness)
	}
	if c.LogLevel != "error" {
		t.Errorf("command line should win: log-level %q", c.LogLevel)
	}
	if c.ReadConsistency != "bounded" {
		t.Errorf("default lost: read-consistency %q", c.ReadConsistency)
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		args []string
		file string
		env  [2]string
		want string
	}{
		{file: write("typo.yaml", "max-stalness: 1s\n"), want: `unknown setting "max-stalness"`},
		{file: write("bad.yaml", "name: [unclosed\n"), want: "bad.yaml"},
		{file: write("badval.yaml", "snapshot-count: lots\n"), want: "snapshot-count"},
		{file: filepath.Join(dir, "missing.yaml"), want: "read config file"},
		{env: [2]string{"TOKENSTORE_ELECTION_TICKS", "many"}, want: "TOKENSTORE_ELECTION_TICKS"},
		{args: []string{"--max-staleness", "soon"}, want: "max-staleness"},
		{args: []string{"--test-clock-offset", "2 minutes"}, want: "test-clock-offset"},
	}
	for _, c := range cases {
		if c.env[0] != "" {
			t.Setenv(c.env[0], c.env[1])
		}
		_, err := parse(t, c.args, c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("args %v file %s env %v: error %v, want it to mention %q", c.args, c.file, c.env, err, c.want)
		}
		if c.env[0] != "" {
			os.Unsetenv(c.env[0])
		}
	}
}

func TestValidateRefusesBadSettings(t *testing.T) {
	for _, mod := range []struct {
		name string
		f    func(*Config)
		want string
	}{
		{"read consistency", func(c *Config) { c.ReadConsistency = "eventual" }, "--read-consistency"},
		{"listen address", func(c *Config) { c.ListenClient = "nope" }, "--listen-client"},
		{"initial cluster without self", func(c *Config) { c.InitialCluster = "other=127.0.0.1:1" }, "does not list this member"},
		{"initial cluster syntax", func(c *Config) { c.InitialCluster = "default" }, "name=host:port"},
		{"join without gossip", func(c *Config) { c.Join = []string{"a:1"} }, "--listen-gossip"},
		{"cluster state", func(c *Config) { c.InitialClusterState = "maybe" }, "--initial-cluster-state"},
		{"time source", func(c *Config) { c.TimeSource = "ntp" }, "--time-source"},
		{"max clock correction", func(c *Config) { c.MaxClockCorrection = 0 }, "--max-clock-correction"},
		{"clock outlier threshold", func(c *Config) { c.ClockOutlierThreshold = -time.Second }, "--clock-outlier-threshold"},
		{"negative token retention", func(c *Config) { c.TokenRetention = -time.Hour }, "--token-retention"},
	} {
		c := DefaultConfig()
		mod.f(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), mod.want) {
			t.Errorf("%s: %v, want an error naming %s", mod.name, err, mod.want)
		}
	}
}
