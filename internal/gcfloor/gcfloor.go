// Package gcfloor keeps the Go heap goal from falling below a floor: after
// every collection it sets the GC percentage so that the next collection
// starts at max(floor, live × (1 + GOGC/100)).
//
// Why: a member serving reads from a small data set has a live heap of a
// few tens of MiB, and with GOGC=100 it collects every few MiB of request
// garbage (gRPC buffers, protobuf messages): many times a second under
// read load, a quarter of a follower's CPU (docs/BENCHMARKS.md). A higher
// GOGC for every member would let a large member's heap grow with it (with
// a million tokens, GOGC=400 would allow five times the live index, past
// the 1 GiB per member the project promises). A floor costs nothing where
// the heap is large: once live × (1 + GOGC/100) exceeds the floor, GOGC
// applies unchanged, so the floor only lends memory to members that use
// little.
//
// The floor is capped at a quarter of the cgroup (v2) memory limit when the
// process runs under one, so a small pod is never pushed towards its limit
// by the floor. GOGC=off leaves the collector alone. A GOMEMLIMIT, if set,
// still applies (the runtime collects early near it whatever the percent).
//
// It changes a process-wide setting: run one Floor per process (the
// member's main does), never in tests that run several members.
package gcfloor

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// cgroupMemoryMax is cgroup v2's memory limit of this process's cgroup.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// Run keeps the heap goal at or above floor bytes until ctx is done, then
// restores the GC percent it found (at the first collection after). It
// returns at once and starts no goroutine: the work happens after each
// collection, in the finalizer of a sentinel object re-armed every cycle,
// so it costs nothing between collections. floor 0 does nothing.
func Run(ctx context.Context, floor uint64, log *slog.Logger) {
	if floor == 0 {
		return
	}
	if lim, ok := cgroupLimit(cgroupMemoryMax); ok && floor > lim/4 {
		log.Info("GC heap floor capped at a quarter of the cgroup memory limit", "floor_mib", floor>>20, "cgroup_limit_mib", lim>>20, "capped_mib", (lim/4)>>20)
		floor = lim / 4
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 { // GOGC=off: the operator manages the collector
		return
	}
	t := &tuner{ctx: ctx, floor: floor, base: base, current: base, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	t.arm()
}

// tuner is the state of one Run; only the finalizer goroutine touches it
// after Run returns (finalizers run one at a time).
type tuner struct {
	ctx     context.Context
	floor   uint64
	base    int // the GC percent found at start (GOGC)
	current int
	sample  []metrics.Sample
}

// sentinel is garbage the collector finds once per cycle. It is larger
// than the tiny-allocation size, whose objects may share a block and get
// their finalizers late.
type sentinel struct{ _ [32]byte }

func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) { t.afterGC() })
}

func (t *tuner) afterGC() {
	if t.ctx.Err() != nil {
		debug.SetGCPercent(t.base)
		return
	}
	metrics.Read(t.sample)
	var v [3]uint64
	ok := true
	for i, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			ok = false
			break
		}
		v[i] = s.Value.Uint64()
	}
	if ok {
		p := Percent(v[0], v[1]+v[2], t.floor, t.base)
		// Only a change of more than a tenth is applied: the live heap
		// moves a little every cycle and each change recomputes the goal.
		if p*10 > t.current*11 || p*10 < t.current*9 {
			debug.SetGCPercent(p)
			t.current = p
		}
	}
	t.arm()
}

// heapMinimum is the runtime's smallest heap goal at GOGC=100 (its
// defaultHeapMinimum); the runtime scales it by GOGC/100 like the rest of
// the goal.
const heapMinimum = 4 << 20

// Percent is the GC percent that puts the heap goal at floor, or base when
// base already puts it at or above the floor. The runtime's goal is
// max(live + (live + roots) × percent/100, 4 MiB × percent/100), where roots
// are the goroutine stacks and globals it scans (Go 1.18+): leaving them
// out would multiply the stacks of a few thousand goroutines by a large
// percent and overshoot the floor. The second term is the runtime's heap
// minimum, which it scales by the percent too: a member whose live heap is
// a few MiB (just started, or serving a small data set) would otherwise
// get a goal of up to three times the floor (383 MiB for a 128 MiB floor
// with 1 MiB live, measured; TestRuntimeGoalIsTheFloor).
func Percent(live, roots, floor uint64, base int) int {
	scan := max(live+roots, 1)
	if live+scan*uint64(base)/100 >= floor {
		return base
	}
	p := (floor - live) * 100 / scan
	return int(min(p, floor*100/heapMinimum))
}

// cgroupLimit reads a cgroup v2 memory.max file: a byte count, or "max"
// (no limit).
func cgroupLimit(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
