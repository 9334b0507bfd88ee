// Package campaign runs fault campaigns against real tokenstore processes:
// a cluster behind controllable proxies (harness), concurrent clients
// whose every call is recorded (history), and a nemesis that injects a
// schedule of faults derived from a seed. After the faults heal it checks
// that every member serves again and that all members hold the same
// state, then checks the history (linearizability with porcupine, the
// staleness bound, no lost or duplicated write, no authentication after a
// revoke). On a violation everything needed to understand it is kept
// under the run's output directory.
package campaign

import (
	"fmt"
	"time"
)

// Config describes one run. Zero fields take the defaults of Defaults.
type Config struct {
	// Bin is the directory holding the tokenstore binary.
	Bin string
	// Out is the directory runs keep their files in (cluster-test/out).
	Out string
	// Name names the run's directory (with seed and time).
	Name string
	// Seed derives the fault schedule and the clients' choices.
	Seed int64
	// Duration is how long clients run while faults are injected.
	Duration time.Duration
	// Members is the cluster size (3 or 5).
	Members int
	// Clients is the number of concurrent clients.
	Clients int
	// HotTokens is how many of the newest tokens clients mostly act on.
	HotTokens int
	// Think bounds a client's pause between calls.
	Think time.Duration
	// WriteTimeout and ReadTimeout are the clients' deadlines.
	WriteTimeout, ReadTimeout time.Duration
	// MaxStaleness is the members' --max-staleness.
	MaxStaleness time.Duration
	// TickInterval and ElectionTicks are the members' raft timing.
	TickInterval  time.Duration
	ElectionTicks int
	// SnapshotCount is the members' --snapshot-count (small, so that
	// snapshots are taken and sent during a run).
	SnapshotCount int
	// Faults are the faults the schedule draws from.
	Faults []Fault
	// Timing shapes the schedule (Election is filled in).
	Timing Timing
	// Heal bounds the wait for every member to serve again and agree.
	Heal time.Duration
	// CheckTimeout bounds each porcupine check (0: none).
	CheckTimeout time.Duration
	// Keep keeps the run's directory even when every check passes.
	Keep bool
	// Strict fails the run on violations of known issues too.
	Strict bool
	// Flags are extra flags for every member.
	Flags []string
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Name == "" {
		c.Name = "run"
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	def(&c.Duration, 30*time.Second)
	defInt(&c.Members, 3)
	defInt(&c.Clients, 6)
	defInt(&c.HotTokens, 12)
	def(&c.Think, 15*time.Millisecond)
	def(&c.WriteTimeout, 3*time.Second)
	def(&c.ReadTimeout, 2*time.Second)
	def(&c.MaxStaleness, 2*time.Second)
	def(&c.TickInterval, 100*time.Millisecond)
	defInt(&c.ElectionTicks, 10)
	defInt(&c.SnapshotCount, 300)
	if c.Faults == nil {
		c.Faults = AllFaults
	}
	c.Timing.Election = time.Duration(c.ElectionTicks) * c.TickInterval
	def(&c.Timing.Quiet, 2*time.Second)
	def(&c.Timing.MinGap, 500*time.Millisecond)
	def(&c.Timing.MaxGap, 2*time.Second)
	def(&c.Timing.MaxHold, 6*time.Second)
	if c.Timing.Overlap == 0 {
		c.Timing.Overlap = 0.3
	}
	def(&c.Heal, 60*time.Second)
	def(&c.CheckTimeout, 3*time.Minute)
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// memberFlags are the flags every member runs with.
func (c *Config) memberFlags() []string {
	return append([]string{
		"--max-staleness", c.MaxStaleness.String(),
		"--tick-interval", c.TickInterval.String(),
		"--election-ticks", fmt.Sprint(c.ElectionTicks),
		"--snapshot-count", fmt.Sprint(c.SnapshotCount),
		"--last-used-interval", "500ms",
		"--log-level", "info",
	}, c.Flags...)
}
