// Package threadcpu reads the CPU time of the calling OS thread, for
// benchmarks that must be read on a machine shared with other work: wall
// time per operation grows with whatever else the cores run, while the CPU
// time a thread spent on the operation does not (time descheduled is not
// counted). A benchmark pins its goroutine to its thread
// (runtime.LockOSThread) and reads Now around the measured work.
package threadcpu

import "time"

// Now returns the CPU time (user and system) the calling OS thread has
// used, and false where the platform does not tell.
func Now() (time.Duration, bool) { return now() }
