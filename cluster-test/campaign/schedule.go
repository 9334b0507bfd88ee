package campaign

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// Fault is a kind of fault the nemesis injects.
type Fault string

// Faults. Targets named "leader" are resolved when the step runs (the
// member a quorum reports as leader); the others from the step's Pick.
const (
	// KillMember SIGKILLs a member and restarts it after Hold.
	KillMember Fault = "kill"
	// KillLeader SIGKILLs the leader and restarts it after Hold.
	KillLeader Fault = "kill-leader"
	// KillAll SIGKILLs every member at once (a power cut) and restarts
	// them after Hold: acknowledged writes must survive.
	KillAll Fault = "kill-all"
	// PauseMember and PauseLeader SIGSTOP a member for Hold (longer than
	// an election timeout), then SIGCONT it.
	PauseMember Fault = "pause"
	PauseLeader Fault = "pause-leader"
	// IsolateLeader and IsolateFollower cut every link of one member, in
	// both directions (black hole or refused connections, by Mode).
	IsolateLeader   Fault = "isolate-leader"
	IsolateFollower Fault = "isolate-follower"
	// LeaderCannotSend cuts the leader's outgoing links only; it still
	// hears the others. LeaderCannotHear cuts its incoming links only.
	LeaderCannotSend Fault = "leader-one-way-out"
	LeaderCannotHear Fault = "leader-one-way-in"
	// Bridge splits the others into two sides that cannot talk, with one
	// member (the bridge) talking to both: a non-transitive partition.
	Bridge Fault = "bridge"
	// RandomCuts cuts a random set of directed links one way.
	RandomCuts Fault = "random-one-way"
	// SlowNetwork delays every link (or a random subset) by Delay.
	SlowNetwork Fault = "delay"
	// HandoffStorm SIGTERMs the leader Count times in a row, restarting it
	// each time; a terminating leader hands leadership over first.
	HandoffStorm Fault = "handoff-storm"
	// TransferStorm asks for Count leadership transfers in a row through
	// ClusterService.TransferLeadership (skipped when the RPC is missing).
	TransferStorm Fault = "transfer-storm"
	// Replace removes a member, wipes its data and joins a new member in
	// its place (skipped when the binary cannot join a running cluster).
	Replace Fault = "replace"
	// ClockOffset restarts a member with --test-clock-offset (skipped when
	// the binary has no such flag).
	ClockOffset Fault = "clock-offset"
	// SlowDisk restarts a member with --test-fsync-delay (skipped when the
	// binary has no such flag).
	SlowDisk Fault = "slow-disk"
)

// AllFaults is every fault, in a fixed order.
var AllFaults = []Fault{
	KillMember, KillLeader, KillAll, PauseMember, PauseLeader, IsolateLeader, IsolateFollower,
	LeaderCannotSend, LeaderCannotHear, Bridge, RandomCuts, SlowNetwork, HandoffStorm, TransferStorm,
	Replace, ClockOffset, SlowDisk,
}

// ParseFaults reads a comma-separated list of fault names ("" or "all":
// every fault).
func ParseFaults(s string) ([]Fault, error) {
	if s == "" || s == "all" {
		return AllFaults, nil
	}
	var out []Fault
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, k := range AllFaults {
			if string(k) == f {
				out, ok = append(out, k), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown fault %q (known: %v)", f, AllFaults)
		}
	}
	return out, nil
}

// Step is one fault of a schedule.
type Step struct {
	// At is when the step starts, from the start of the run.
	At    time.Duration
	Fault Fault
	// Hold is how long the fault lasts before it heals.
	Hold time.Duration
	// Pick chooses targets when the step runs (which member, which side).
	Pick uint64
	// Mode is how links are cut (Blackhole or Refuse) for isolations.
	Mode harness.Mode
	// Delay is the one-way latency of SlowNetwork.
	Delay time.Duration
	// Count is the number of rounds of a storm.
	Count int
	// Offset is ClockOffset's offset.
	Offset time.Duration
}

func (s Step) String() string {
	out := fmt.Sprintf("%7.2fs %-18s hold %v", s.At.Seconds(), s.Fault, s.Hold.Round(time.Millisecond))
	switch s.Fault {
	case IsolateLeader, IsolateFollower, Bridge:
		out += " mode " + s.Mode.String()
	case SlowNetwork:
		out += fmt.Sprintf(" delay %v", s.Delay)
	case HandoffStorm, TransferStorm:
		out += fmt.Sprintf(" rounds %d", s.Count)
	case ClockOffset:
		out += fmt.Sprintf(" offset %v", s.Offset)
	}
	return out + fmt.Sprintf(" pick %d", s.Pick%1000)
}

// Timing shapes a schedule.
type Timing struct {
	// Election is the members' election timeout; pauses last longer.
	Election time.Duration
	// Quiet is fault-free time at the start and the end of the run.
	Quiet time.Duration
	// MinGap and MaxGap bound the time between the starts of two faults;
	// Overlap is the probability that a fault starts before the previous
	// one healed (faults combine).
	MinGap, MaxGap time.Duration
	Overlap        float64
	// MaxHold bounds how long a partition or delay lasts.
	MaxHold time.Duration
}

// Schedule derives the fault schedule of a run from its seed alone, so a
// seed reproduces it.
func Schedule(seed int64, length time.Duration, faults []Fault, t Timing) []Step {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_fa17))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	var out []Step
	if len(faults) == 0 {
		return out
	}
	at := t.Quiet
	var prevEnd time.Duration
	for {
		f := faults[rng.IntN(len(faults))]
		s := Step{At: at, Fault: f, Pick: rng.Uint64()}
		switch f {
		case KillMember, KillLeader:
			s.Hold = between(200*time.Millisecond, 3*t.Election)
		case KillAll:
			s.Hold = between(100*time.Millisecond, 2*t.Election)
		case PauseMember, PauseLeader:
			s.Hold = between(t.Election*3/2, 4*t.Election)
		case SlowNetwork:
			s.Hold = between(t.Election, t.MaxHold)
			s.Delay = between(10*time.Millisecond, t.Election/2)
		case HandoffStorm, TransferStorm:
			s.Count = 2 + rng.IntN(4)
			s.Hold = time.Duration(s.Count) * t.Election
		case Replace:
			s.Hold = 2 * t.Election
		case ClockOffset:
			s.Hold = between(2*t.Election, t.MaxHold)
			s.Offset = between(-2*time.Minute, 2*time.Minute)
		default: // partitions and slow disk
			s.Hold = between(t.Election*3/2, t.MaxHold)
		}
		s.Mode = harness.Blackhole
		if rng.IntN(4) == 0 {
			s.Mode = harness.Refuse
		}
		if at+s.Hold > length-t.Quiet {
			break
		}
		out = append(out, s)
		end := at + s.Hold
		if end > prevEnd {
			prevEnd = end
		}
		// The next fault starts after this one healed, or (Overlap)
		// while it is still in force.
		if rng.Float64() < t.Overlap {
			at += between(s.Hold/4, s.Hold)
		} else {
			at = prevEnd + between(t.MinGap, t.MaxGap)
		}
	}
	return out
}
