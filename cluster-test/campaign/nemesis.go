package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// event is one thing the nemesis did, for the report and the
// visualisation.
type event struct {
	Start, End time.Duration // from the start of the history
	Fault      Fault
	What       string
	Skipped    string // why the step did nothing
}

// active is a fault in force and how to heal it.
type active struct {
	ev      *event
	until   time.Time
	heal    func() error
	members []*harness.Member // under a process fault
}

// nemesis runs a schedule against a cluster. It is the only goroutine
// that changes the cluster while the run lasts.
type nemesis struct {
	c       *Cluster
	log     func(string, ...any)
	start   time.Time
	mu      sync.Mutex
	events  []*event
	active  []*active
	busy    map[*harness.Member]bool // members under a process fault
	missing map[Fault]string         // faults the binary cannot do, and why
}

func newNemesis(c *Cluster, start time.Time, log func(string, ...any)) *nemesis {
	return &nemesis{c: c, log: log, start: start, busy: map[*harness.Member]bool{}, missing: map[Fault]string{}}
}

// run executes steps until they are done or ctx ends, then heals
// everything.
func (n *nemesis) run(ctx context.Context, steps []Step) {
	defer n.healAll()
	for _, s := range steps {
		if !n.waitUntil(ctx, n.start.Add(s.At)) {
			return
		}
		n.inject(ctx, s)
	}
	// Let the last faults run their course.
	for len(n.active) > 0 {
		next := n.active[0].until
		for _, a := range n.active {
			if a.until.Before(next) {
				next = a.until
			}
		}
		if !n.waitUntil(ctx, next) {
			return
		}
	}
}

// waitUntil heals faults as they come due until t; false if ctx ended.
func (n *nemesis) waitUntil(ctx context.Context, t time.Time) bool {
	for {
		n.healDue(time.Now())
		next := t
		for _, a := range n.active {
			if a.until.Before(next) {
				next = a.until
			}
		}
		d := time.Until(next)
		if d <= 0 && !time.Now().Before(t) {
			return true
		}
		if d > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(d):
			}
		}
	}
}

func (n *nemesis) since() time.Duration { return time.Since(n.start) }

func (n *nemesis) healDue(now time.Time) {
	kept := n.active[:0]
	var due []*active
	for _, a := range n.active {
		if !a.until.After(now) {
			due = append(due, a)
		} else {
			kept = append(kept, a)
		}
	}
	n.active = kept
	for _, a := range due {
		n.healOne(a)
	}
}

func (n *nemesis) healOne(a *active) {
	if err := a.heal(); err != nil {
		n.log("nemesis: heal %s: %v", a.ev.What, err)
		a.ev.What += " (heal failed: " + err.Error() + ")"
	}
	for _, m := range a.members {
		delete(n.busy, m)
	}
	n.mu.Lock()
	a.ev.End = n.since()
	n.mu.Unlock()
	n.log("nemesis: %7.2fs healed %s", a.ev.End.Seconds(), a.ev.What)
}

// healAll ends every fault: links pass, paused members continue, stopped
// members start.
func (n *nemesis) healAll() {
	for _, a := range n.active {
		n.healOne(a)
	}
	n.active = nil
	if n.c.Net != nil {
		n.c.Net.Heal()
	}
	for _, m := range n.c.Current() {
		if m.Paused() {
			_ = n.c.Resume(m)
		}
		if !m.Running() {
			if err := n.c.Start(m); err != nil {
				n.log("nemesis: restart %s: %v", m.Name, err)
			}
		}
	}
}

// Events returns what the nemesis did so far.
func (n *nemesis) Events() []event {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]event, len(n.events))
	for i, e := range n.events {
		out[i] = *e
	}
	return out
}

func (n *nemesis) record(f Fault, what, skipped string) *event {
	ev := &event{Start: n.since(), End: n.since(), Fault: f, What: what, Skipped: skipped}
	n.mu.Lock()
	n.events = append(n.events, ev)
	n.mu.Unlock()
	if skipped != "" {
		n.log("nemesis: %7.2fs skip %s: %s", ev.Start.Seconds(), f, skipped)
	} else {
		n.log("nemesis: %7.2fs %s", ev.Start.Seconds(), what)
	}
	return ev
}

// finish ends an event that ran its course inside inject (storms).
func (n *nemesis) finish(ev *event, result string) {
	n.mu.Lock()
	ev.What += ": " + result
	ev.End = n.since()
	n.mu.Unlock()
	n.log("nemesis: %7.2fs done: %s", ev.End.Seconds(), ev.What)
}

// hold keeps a fault in force for s.Hold.
func (n *nemesis) hold(s Step, ev *event, heal func() error, members ...*harness.Member) {
	for _, m := range members {
		n.busy[m] = true
	}
	n.active = append(n.active, &active{ev: ev, until: time.Now().Add(s.Hold), heal: heal, members: members})
}

// free returns the running members under no process fault.
func (n *nemesis) free() []*harness.Member {
	var out []*harness.Member
	for _, m := range n.c.Current() {
		if m.Running() && !m.Paused() && !n.busy[m] {
			out = append(out, m)
		}
	}
	return out
}

func pick[T any](list []T, p uint64) T { return list[p%uint64(len(list))] }

func names(ms []*harness.Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

func (n *nemesis) inject(ctx context.Context, s Step) {
	if why, ok := n.missing[s.Fault]; ok {
		n.record(s.Fault, "", why)
		return
	}
	net := n.c.Net
	needNet := func() bool {
		if net == nil {
			n.record(s.Fault, "", "cluster has no proxies")
			return false
		}
		return true
	}
	leader := func() *harness.Member {
		l := n.c.Leader(ctx)
		if l == nil {
			n.record(s.Fault, "", "no leader")
		}
		return l
	}
	others := func(m *harness.Member) []*harness.Member {
		var out []*harness.Member
		for _, o := range n.c.Current() {
			if o != m {
				out = append(out, o)
			}
		}
		return out
	}
	cut := func(what string, rules []harness.Rule) {
		id := net.Apply(rules...)
		ev := n.record(s.Fault, what, "")
		n.hold(s, ev, func() error { net.Remove(id); return nil })
	}
	both := func(a, b *harness.Member, mode harness.Mode) []harness.Rule {
		return []harness.Rule{{Link: harness.Link{From: a.Name, To: b.Name}, Mode: mode}, {Link: harness.Link{From: b.Name, To: a.Name}, Mode: mode}}
	}

	switch s.Fault {
	case KillMember, KillLeader:
		var m *harness.Member
		if s.Fault == KillLeader {
			if m = leader(); m == nil {
				return
			}
			if n.busy[m] {
				n.record(s.Fault, "", "leader "+m.Name+" is already under a process fault")
				return
			}
		} else {
			free := n.free()
			if len(free) == 0 {
				n.record(s.Fault, "", "every member is under a process fault")
				return
			}
			m = pick(free, s.Pick)
		}
		n.c.Kill(m)
		ev := n.record(s.Fault, fmt.Sprintf("SIGKILL %s, restart in %v", m.Name, s.Hold.Round(time.Millisecond)), "")
		n.hold(s, ev, func() error { return n.c.Start(m) }, m)

	case KillAll:
		if len(n.busy) > 0 {
			n.record(s.Fault, "", "another process fault is in force")
			return
		}
		ms := n.c.Current()
		for _, m := range ms {
			n.c.Kill(m)
		}
		ev := n.record(s.Fault, fmt.Sprintf("SIGKILL all (%s), restart in %v", names(ms), s.Hold.Round(time.Millisecond)), "")
		n.hold(s, ev, func() error {
			var errs []error
			for _, m := range ms {
				errs = append(errs, n.c.Start(m))
			}
			return errors.Join(errs...)
		}, ms...)

	case PauseMember, PauseLeader:
		var m *harness.Member
		if s.Fault == PauseLeader {
			if m = leader(); m == nil {
				return
			}
			if n.busy[m] {
				n.record(s.Fault, "", "leader "+m.Name+" is already under a process fault")
				return
			}
		} else {
			free := n.free()
			if len(free) == 0 {
				n.record(s.Fault, "", "every member is under a process fault")
				return
			}
			m = pick(free, s.Pick)
		}
		if err := n.c.Pause(m); err != nil {
			n.record(s.Fault, "", err.Error())
			return
		}
		ev := n.record(s.Fault, fmt.Sprintf("SIGSTOP %s for %v", m.Name, s.Hold.Round(time.Millisecond)), "")
		n.hold(s, ev, func() error { return n.c.Resume(m) }, m)

	case IsolateLeader, IsolateFollower:
		if !needNet() {
			return
		}
		l := leader()
		if l == nil {
			return
		}
		m := l
		if s.Fault == IsolateFollower {
			if len(others(l)) == 0 {
				n.record(s.Fault, "", "no follower")
				return
			}
			m = pick(others(l), s.Pick)
		}
		var rules []harness.Rule
		for _, o := range others(m) {
			rules = append(rules, both(m, o, s.Mode)...)
		}
		cut(fmt.Sprintf("isolate %s (%s) for %v", m.Name, s.Mode, s.Hold.Round(time.Millisecond)), rules)

	case LeaderCannotSend, LeaderCannotHear:
		if !needNet() {
			return
		}
		l := leader()
		if l == nil {
			return
		}
		var rules []harness.Rule
		for _, o := range others(l) {
			link := harness.Link{From: l.Name, To: o.Name}
			if s.Fault == LeaderCannotHear {
				link = harness.Link{From: o.Name, To: l.Name}
			}
			rules = append(rules, harness.Rule{Link: link, Mode: harness.CutForward})
		}
		dir := "outgoing"
		if s.Fault == LeaderCannotHear {
			dir = "incoming"
		}
		cut(fmt.Sprintf("cut leader %s's %s links for %v", l.Name, dir, s.Hold.Round(time.Millisecond)), rules)

	case Bridge:
		if !needNet() {
			return
		}
		ms := n.c.Current()
		if len(ms) < 3 {
			n.record(s.Fault, "", "a bridge needs three members")
			return
		}
		bridge := pick(ms, s.Pick)
		rest := others(bridge)
		// Split the rest in two non-empty sides at a point Pick chooses.
		k := 1 + int((s.Pick>>8)%uint64(len(rest)-1))
		a, b := rest[:k], rest[k:]
		var rules []harness.Rule
		for _, x := range a {
			for _, y := range b {
				rules = append(rules, both(x, y, s.Mode)...)
			}
		}
		cut(fmt.Sprintf("bridge partition {%s} | {%s} joined only through %s (%s) for %v", names(a), names(b), bridge.Name, s.Mode, s.Hold.Round(time.Millisecond)), rules)

	case RandomCuts:
		if !needNet() {
			return
		}
		ms := n.c.Current()
		if len(ms) < 2 {
			n.record(s.Fault, "", "one member only")
			return
		}
		var rules []harness.Rule
		var links []string
		bit := 0
		for _, x := range ms {
			for _, y := range ms {
				if x == y {
					continue
				}
				if (s.Pick>>bit)%3 == 0 {
					l := harness.Link{From: x.Name, To: y.Name}
					rules = append(rules, harness.Rule{Link: l, Mode: harness.CutForward})
					links = append(links, l.String())
				}
				bit += 2
			}
		}
		if len(rules) == 0 {
			l := harness.Link{From: ms[0].Name, To: ms[1].Name}
			rules = append(rules, harness.Rule{Link: l, Mode: harness.CutForward})
			links = append(links, l.String())
		}
		sort.Strings(links)
		cut(fmt.Sprintf("one-way cuts %s for %v", strings.Join(links, " "), s.Hold.Round(time.Millisecond)), rules)

	case SlowNetwork:
		if !needNet() {
			return
		}
		ms := n.c.Current()
		var rules []harness.Rule
		all := s.Pick%2 == 0
		bit := 1
		for _, x := range ms {
			for _, y := range ms {
				if x != y && (all || (s.Pick>>bit)&1 == 1) {
					rules = append(rules, harness.Rule{Link: harness.Link{From: x.Name, To: y.Name}, Mode: harness.Delay, Delay: s.Delay})
				}
				bit++
			}
		}
		which := "every link"
		if !all {
			which = fmt.Sprintf("%d links", len(rules))
		}
		cut(fmt.Sprintf("delay %s by %v for %v", which, s.Delay, s.Hold.Round(time.Millisecond)), rules)

	case HandoffStorm:
		ev := n.record(s.Fault, fmt.Sprintf("SIGTERM the leader %d times (graceful hand-off, restart at once)", s.Count), "")
		var done []string
		for i := 0; i < s.Count && ctx.Err() == nil; i++ {
			l := n.c.Leader(ctx)
			if l == nil || n.busy[l] {
				continue
			}
			n.c.Terminate(l)
			if err := n.c.Start(l); err != nil {
				n.log("nemesis: restart %s: %v", l.Name, err)
			}
			done = append(done, l.Name)
			sleepCtx(ctx, time.Duration(s.Pick>>uint(i*4)%1000)*time.Millisecond)
		}
		n.finish(ev, strings.Join(done, ","))

	case TransferStorm:
		ev := n.record(s.Fault, fmt.Sprintf("TransferLeadership %d times", s.Count), "")
		var done []string
		for i := 0; i < s.Count && ctx.Err() == nil; i++ {
			free := n.free()
			if len(free) < 2 {
				break
			}
			via := pick(free, s.Pick>>uint(i*3))
			to := pick(free, s.Pick>>uint(i*3+16))
			tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			r, err := via.Cluster.TransferLeadership(tctx, &tokenstorev1.TransferLeadershipRequest{Name: to.Name})
			cancel()
			if status.Code(err) == codes.Unimplemented {
				n.missing[TransferStorm] = "the server has no ClusterService.TransferLeadership"
				ev.Skipped = n.missing[TransferStorm]
				break
			}
			if err != nil {
				done = append(done, fmt.Sprintf("%s→%s failed (%s)", via.Name, to.Name, status.Code(err)))
			} else {
				done = append(done, fmt.Sprintf("%s→%s leads", to.Name, r.GetLeader()))
			}
			sleepCtx(ctx, time.Duration(100+(s.Pick>>uint(i*5))%700)*time.Millisecond)
		}
		n.finish(ev, strings.Join(done, "; "))

	case Replace:
		n.replace(ctx, s)

	case ClockOffset, SlowDisk:
		flag := "test-clock-offset"
		value := s.Offset.String()
		if s.Fault == SlowDisk {
			flag, value = "test-fsync-delay", (time.Duration(5+s.Pick%45) * time.Millisecond).String()
		}
		if !n.c.HasFlag(flag) {
			n.missing[s.Fault] = "the binary has no --" + flag
			n.record(s.Fault, "", n.missing[s.Fault])
			return
		}
		free := n.free()
		if len(free) == 0 {
			n.record(s.Fault, "", "every member is under a process fault")
			return
		}
		m := pick(free, s.Pick)
		saved := m.Flags
		n.c.Kill(m)
		m.Flags = append(append([]string(nil), saved...), "--"+flag+"="+value)
		if err := n.c.Start(m); err != nil {
			n.record(s.Fault, "", err.Error())
			m.Flags = saved
			return
		}
		ev := n.record(s.Fault, fmt.Sprintf("restart %s with --%s=%s for %v", m.Name, flag, value, s.Hold.Round(time.Millisecond)), "")
		n.hold(s, ev, func() error {
			n.c.Kill(m)
			m.Flags = saved
			return n.c.Start(m)
		}, m)
	}
}

// replace removes a member, wipes it and joins a new member in its place:
// RemoveMember, SIGKILL, data directory moved aside, AddMember of a new
// name (ids are never reused), start with --initial-cluster-state
// existing.
func (n *nemesis) replace(ctx context.Context, s Step) {
	began := n.since()
	if !n.c.HasFlag("initial-cluster-state") {
		n.missing[Replace] = "the binary has no --initial-cluster-state (cannot join a running cluster)"
		n.record(Replace, "", n.missing[Replace])
		return
	}
	// An earlier removal or add that timed out may have taken effect.
	if changed, err := n.c.Reconcile(ctx); err == nil && len(changed) > 0 {
		n.log("nemesis: membership reconciled (a removal or add that timed out took effect): %v", changed)
	}
	free := n.free()
	if len(free) < len(n.c.Current()) {
		n.record(Replace, "", "a member is under a process fault")
		return
	}
	if len(free) < 2 {
		n.record(Replace, "", "one member only")
		return
	}
	victim := pick(free, s.Pick)
	var via *harness.Member
	for _, m := range free {
		if m != victim {
			via = m
			break
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	victim.ExpectExit(true) // a removed member may stop by itself
	_, err := via.Cluster.RemoveMember(rctx, &tokenstorev1.RemoveMemberRequest{Name: victim.Name})
	if status.Code(err) == codes.Unimplemented {
		n.missing[Replace] = "the server has no ClusterService.RemoveMember"
		n.record(Replace, "", n.missing[Replace])
		victim.ExpectExit(false)
		return
	}
	if err != nil && status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.NotFound {
		// The outcome may be unknown: ask the membership.
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			names, merr := n.c.Membership(ctx)
			if merr == nil {
				if !names[victim.Name] {
					n.log("nemesis: remove %s via %s failed (%v) but took effect", victim.Name, via.Name, err)
					err = nil
				}
				break
			}
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	if err != nil {
		n.record(Replace, "", fmt.Sprintf("remove %s via %s: %v", victim.Name, via.Name, err))
		victim.ExpectExit(false) // still a member (as far as we know): stopping would be a crash
		return
	}
	n.c.Kill(victim)
	n.c.Retire(victim)
	if err := os.Rename(victim.DataDir, filepath.Join(filepath.Dir(victim.DataDir), victim.Name+".removed")); err != nil {
		n.log("nemesis: move aside %s: %v", victim.DataDir, err)
	}
	nm, err := n.c.AddMember(rctx, via)
	if err != nil {
		n.record(Replace, "", fmt.Sprintf("removed %s, but adding a replacement failed: %v", victim.Name, err))
		return
	}
	ev := n.record(Replace, fmt.Sprintf("replace %s by %s (removed, wiped, joined in %v)", victim.Name, nm.Name, (n.since()-began).Round(time.Millisecond)), "")
	n.mu.Lock()
	ev.Start = began
	n.mu.Unlock()
	n.hold(s, ev, func() error { return nil }, nm)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
