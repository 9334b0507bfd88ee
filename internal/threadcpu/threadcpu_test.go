package threadcpu

import (
	"runtime"
	"testing"
	"time"
)

// TestCountsWorkNotSleep: a thread's CPU time grows with the work it does
// and not with the time it sleeps.
func TestCountsWorkNotSleep(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok := Now()
	if !ok {
		t.Skip("no per-thread CPU time on this platform")
	}
	time.Sleep(200 * time.Millisecond)
	t1, _ := Now()
	if slept := t1 - t0; slept > 50*time.Millisecond {
		t.Errorf("sleeping 200ms counted %v of CPU", slept)
	}
	x := 0
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	t2, _ := Now()
	if worked := t2 - t1; worked <= 0 {
		t.Errorf("spinning 100ms counted %v of CPU (%d loops)", worked, x)
	}
}
