package server

// DefaultGCHeapFloorMiB is --gc-heap-floor-mib's default (internal/gcfloor
// explains the mechanism). With the reads benchmark's 1,000 tokens a
// member's live heap is a few tens of MiB, so GOGC=100 collected every few
// MiB of request garbage and GC was a quarter of a follower's CPU; 256 MiB
// makes collections several times rarer there. It changes nothing for a
// large member: with a million tokens the live index (about 193 MiB) times
// two is past the floor already, so goal 5 (1 GiB per member) is
// unaffected, and a member in a cgroup gets at most a quarter of its memory
// limit as floor.
const DefaultGCHeapFloorMiB = 256
