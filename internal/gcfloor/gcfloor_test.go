package gcfloor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, roots, floor uint64
		base, want         int
	}{
		{live: 10 * mib, floor: 256 * mib, base: 100, want: 2460},                  // 10 MiB live: collect at 256 MiB
		{live: 10 * mib, roots: 10 * mib, floor: 256 * mib, base: 100, want: 1230}, // stacks count in the goal
		{live: 128 * mib, floor: 256 * mib, base: 100, want: 100},                  // GOGC already reaches the floor
		{live: 193 * mib, roots: mib, floor: 256 * mib, base: 100, want: 100},      // a million tokens: unchanged
		{live: 100 * mib, floor: 256 * mib, base: 200, want: 200},
		{live: mib, floor: 128 * mib, base: 100, want: 3200}, // 1 MiB live: the runtime's heap minimum (4 MiB × percent) decides
		{live: 0, floor: 256 * mib, base: 100, want: 6400},
	} {
		if got := Percent(tc.live, tc.roots, tc.floor, tc.base); got != tc.want {
			t.Errorf("Percent(%d MiB live, %d MiB roots, %d MiB floor, GOGC %d) = %d, want %d", tc.live/mib, tc.roots/mib, tc.floor/mib, tc.base, got, tc.want)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "memory.max")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if n, ok := cgroupLimit(write("536870912\n")); !ok || n != 512<<20 {
		t.Errorf("512 MiB limit read as %d, %v", n, ok)
	}
	if _, ok := cgroupLimit(write("max\n")); ok {
		t.Error(`"max" read as a limit`)
	}
	if _, ok := cgroupLimit(filepath.Join(dir, "absent")); ok {
		t.Error("absent file read as a limit")
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitGOGC forces collections until the tuner (run in a finalizer after
// one) has set the GC percent cond wants.
func waitGOGC(t *testing.T, what string, cond func(uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GC percent still %d after 10s of collections", what, gogc())
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestRunRaisesAndRestores: with a floor far above this test's live heap
// the tuner raises the GC percent after a collection, and puts back the
// percent it found once its context ends.
func TestRunRaisesAndRestores(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	if _, limited := cgroupLimit(cgroupMemoryMax); limited {
		t.Log("running under a cgroup memory limit: the floor may be capped")
	}
	ctx, cancel := context.WithCancel(context.Background())
	Run(ctx, 512<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	waitGOGC(t, "after Run", func(p uint64) bool { return p > 100 })
	cancel()
	waitGOGC(t, "after the context ended", func(p uint64) bool { return p == 100 })
}

// TestRuntimeGoalIsTheFloor asks the runtime itself: with a live heap far
// smaller than the runtime's 4 MiB heap minimum, the goal that Percent's
// answer gives must be the floor, not a multiple of it (the minimum is
// scaled by the percent too; before Percent allowed for that, a 128 MiB
// floor gave a 1,586 MiB goal here, with 147 KiB live).
func TestRuntimeGoalIsTheFloor(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	const floor = 128 << 20
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	live, roots := s[0].Value.Uint64(), s[1].Value.Uint64()+s[2].Value.Uint64()
	if live >= heapMinimum {
		t.Skipf("live heap %d bytes is not below the runtime's heap minimum: nothing to check", live)
	}
	debug.SetGCPercent(Percent(live, roots, floor, 100))
	metrics.Read(s)
	goal := s[3].Value.Uint64()
	if goal < floor*9/10 || goal > floor*11/10 {
		t.Fatalf("live %d KiB, roots %d KiB: heap goal %d MiB, want the %d MiB floor (within 10%%)", live>>10, roots>>10, goal>>20, floor>>20)
	}
}
