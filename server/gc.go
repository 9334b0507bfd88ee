package server

// DefaultGCHeapFloorMiB is --gc-heap-floor-mib's default (internal/gcfloor
// explains the mechanism). With the reads benchmark's 1,000 tokens a
// member's live heap is a few MiB, so GOGC=100 collected every few MiB of
// request garbage and GC was a quarter of a follower's CPU; with a floor
// the follower's CPU per bounded read fell from 27 to 20-23 µs (compare,
// docs/BENCHMARKS.md). 128 MiB, not more: the percent is set from the last
// collection's live heap, so when the live heap jumps (an overload's
// buffers) the next goal overshoots the floor for a cycle; with 256 MiB the
// overload test's leader reached 522 MiB resident, with 128 MiB 270 MiB
// (without a floor 42 MiB). It changes nothing for a large member: with a
// million tokens the live index (about 193 MiB) alone is past the floor,
// so goal 5 (1 GiB per member) is unaffected, and a member in a cgroup gets
// at most a quarter of its memory limit as floor.
const DefaultGCHeapFloorMiB = 128
