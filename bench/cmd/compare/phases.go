package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// variant is one side of a comparison: a label, the member the load goes
// to, and the request.
type variant struct {
	label, member string
	do            lg.Op
	// tokenstore marks the variants whose failures fail the run.
	tokenstore bool
}

// rounds runs every variant rounds times with clients clients, in rotating
// order, with CPU accounting; labels get tag appended.
func (e *env) rounds(ctx context.Context, vs []variant, clients, rounds int, tag string) []lg.RoundResult {
	var out []lg.RoundResult
	for r := 1; r <= rounds && ctx.Err() == nil; r++ {
		for _, v := range lg.Rotate(vs, r) {
			before := e.procs.Snap()
			res := lg.RunRound(ctx, clients, e.cfg.duration, v.do)
			e.procs.Fill(&res, before, e.procs.Snap())
			res.Round, res.Label, res.Member = r, v.label+tag, v.member
			if v.tokenstore {
				e.res.Failed += res.Failures()
			}
			out = append(out, res)
		}
	}
	return out
}

// tsSide is the tokenstore side of the side-by-side phases: its leader and
// the follower reads go to, with the tokens created there.
type tsSide struct {
	leader, follower *harness.Member
	set              *lg.TokenSet
}

type etcdSide struct {
	leader, follower *etcdMember
	set              *etcdSet
}

// sides finds both leaders and followers and stores cfg.tokens tokens in
// each system (created through tokenstore's leader; Put at etcd's leader).
func (e *env) sides(ctx context.Context) (*tsSide, *etcdSide, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := &tsSide{}
	var err error
	if t.leader, err = e.ts.Leader(ctx); err != nil {
		return nil, nil, err
	}
	t.follower = e.ts.Followers(t.leader)[0]
	tok, err := e.pool.Tokens(t.leader)
	if err != nil {
		return nil, nil, err
	}
	if t.set, err = lg.CreateTokens(ctx, tok, t.leader.Name, e.cfg.tokens, 16); err != nil {
		return nil, nil, err
	}
	auth, err := e.pool.Auth(t.follower)
	if err != nil {
		return nil, nil, err
	}
	if err := lg.CheckApplied(ctx, auth[0], t.set); err != nil {
		return nil, nil, err
	}
	d := &etcdSide{}
	if d.leader, err = e.et.leader(ctx); err != nil {
		return nil, nil, err
	}
	d.follower = e.et.followers(d.leader)[0]
	clis, err := e.etcdClients(d.leader)
	if err != nil {
		return nil, nil, err
	}
	if d.set, err = putTokens(ctx, clis, e.cfg.tokens, 16, "bench-user-"); err != nil {
		return nil, nil, err
	}
	return t, d, nil
}

// readsPhase is issue 9 (1): authentications/s at a follower.
func (e *env) readsPhase(setupCtx, ctx context.Context) error {
	t, d, err := e.sides(setupCtx)
	if err != nil {
		return err
	}
	tsAuth, err := e.pool.Auth(t.follower)
	if err != nil {
		return err
	}
	etAuth, err := e.etcdClients(d.follower)
	if err != nil {
		return err
	}
	vs := []variant{
		{"tokenstore bounded", t.follower.Name, lg.AuthOp(tsAuth, t.set, lg.Bounded, t.follower.Name), true},
		{"etcd serializable", d.follower.Name, etcdAuthOp(etAuth, d.set, true), false},
		{"tokenstore linearizable", t.follower.Name, lg.AuthOp(tsAuth, t.set, lg.Linearizable, t.follower.Name), true},
		{"etcd linearizable", d.follower.Name, etcdAuthOp(etAuth, d.set, false), false},
	}
	// Warm-up, not reported: connections and caches of both systems.
	for _, v := range vs {
		lg.RunRound(ctx, e.cfg.concurrency, time.Second/2, v.do)
	}
	rs := e.rounds(ctx, vs, e.cfg.concurrency, e.cfg.rounds, "")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(e.out)
	fmt.Fprintf(e.out, "(1) authentication at a follower: %d clients over %d connections per system, %v per round, %d tokens in turn; etcd: Get of the record + salted-hash check in the client\n",
		e.cfg.concurrency, e.cfg.conns, e.cfg.duration, e.cfg.tokens)
	lg.PrintRounds(e.out, "mode", "auth/s", rs, e.procs.Names)
	labels := []string{vs[0].label, vs[1].label, vs[2].label, vs[3].label}
	e.res.Reads = lg.Summarize(rs, labels)
	lg.PrintMedians(e.out, "mode", "auth/s", e.res.Reads)
	lg.PrintCPUPerOp(e.out, "authentication", rs, e.procs.Names, labels)
	e.res.ReadCPU = map[string]cpuSplit{}
	for i, l := range labels {
		prefix := "e"
		if vs[i].tokenstore {
			prefix = "n"
		}
		e.res.ReadCPU[l] = splitCPU(rs, l, prefix)
	}
	for _, s := range e.res.Reads {
		e.res.ReadsOut = append(e.res.ReadsOut, toFigure(s))
	}
	return nil
}

// hotPair is one client count of issue 9 (2).
type hotPair struct {
	Clients         int    `json:"clients"`
	Tokenstore      figure `json:"tokenstore"`
	Etcd            figure `json:"etcd_naive"`
	Conflicts       int    `json:"etcd_conflicts"`
	EtcdErrors      int    `json:"etcd_errors"`
	TokenstoreFails int    `json:"tokenstore_failures"`
}

// lastUsedPhase is issue 9 (2): one hot token, tokenstore with tracking
// on against the naive etcd design, at each of cfg.hotClients.
func (e *env) lastUsedPhase(ctx context.Context) error {
	t, d, err := e.sides(ctx)
	if err != nil {
		return err
	}
	tsAuth, err := e.pool.Auth(t.follower)
	if err != nil {
		return err
	}
	etClis, err := e.etcdClients(d.follower)
	if err != nil {
		return err
	}
	hotTS := &lg.TokenSet{Bearers: t.set.Bearers[:1], Users: t.set.Users[:1]}
	hotET := &etcdSet{keys: d.set.keys[:1], secrets: d.set.secrets[:1], users: d.set.users[:1]}
	var all []lg.RoundResult
	for _, c := range e.cfg.hotClients {
		tag := " x" + strconv.Itoa(c)
		vs := []variant{
			{"tokenstore batched", t.follower.Name, lg.AuthOp(tsAuth, hotTS, lg.Bounded, t.follower.Name), true},
			{"etcd naive", d.follower.Name, etcdNaiveOp(etClis, hotET), false},
		}
		rs := e.rounds(ctx, vs, c, e.cfg.hotRounds, tag)
		all = append(all, rs...)
		ss := lg.Summarize(rs, []string{vs[0].label + tag, vs[1].label + tag})
		h := hotPair{Clients: c, Tokenstore: toFigure(ss[0]), Etcd: toFigure(ss[1])}
		for i := range rs {
			if rs[i].Label == vs[1].label+tag {
				h.Conflicts += rs[i].Wrong
				h.EtcdErrors += rs[i].Errs
			} else {
				h.TokenstoreFails += rs[i].Failures()
			}
		}
		e.res.Hot = append(e.res.Hot, h)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(e.out)
	fmt.Fprintf(e.out, "(2) one hot token at a follower, %v per round: tokenstore Authenticate (bounded, lastUsedAt tracking on) vs naive etcd (linearizable Get + Txn comparing mod revision, putting lastUsedAt); a lost compare is counted under wrong (its proxy answers 401)\n", e.cfg.duration)
	lg.PrintRounds(e.out, "design", "auth/s", all, e.procs.Names)
	return nil
}

// writePair is one client count of issue 9 (3).
type writePair struct {
	Clients    int    `json:"clients"`
	Tokenstore figure `json:"tokenstore_create"`
	Etcd       figure `json:"etcd_put"`
}

// writesWarmup is the writes phase's warm-up per system, in rounds.
const writesWarmup = 2

// writesPhase is issue 9 (3): CreateToken/s against Put/s, both at the
// leader (the best case of each), at each of cfg.writeClients.
func (e *env) writesPhase(ctx context.Context) error {
	var all []lg.RoundResult
	for _, c := range e.cfg.writeClients {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		tl, err := e.ts.Leader(lctx)
		if err != nil {
			cancel()
			return err
		}
		el, err := e.et.leader(lctx)
		cancel()
		if err != nil {
			return err
		}
		tok, err := e.pool.Tokens(tl)
		if err != nil {
			return err
		}
		clis, err := e.etcdClients(el)
		if err != nil {
			return err
		}
		tag := " x" + strconv.Itoa(c)
		last := make([]string, c)
		vs := []variant{
			{"tokenstore create", tl.Name, lg.CreateOp(tok, tl.Name, "w"+strconv.Itoa(c), last), true},
			{"etcd put", el.Name, etcdPutOp(clis), false},
		}
		if c == e.cfg.writeClients[0] {
			// Warm-up, not reported: a member's first seconds of writes pay
			// for growing its heap (page faults on fresh memory, up to
			// tokenstore's GC floor) and its files; a member in service has
			// paid that long ago. Measured: tokenstore's creates/s at 16
			// clients rose over four back-to-back 5 s rounds (2,411, 2,814,
			// 3,140, 3,202) while etcd's Puts/s stayed flat (3,200 to 3,234).
			for _, v := range vs {
				lg.RunRound(ctx, c, writesWarmup*e.cfg.duration, v.do)
			}
		}
		rs := e.rounds(ctx, vs, c, e.cfg.rounds, tag)
		all = append(all, rs...)
		ss := lg.Summarize(rs, []string{vs[0].label + tag, vs[1].label + tag})
		e.res.Writes = append(e.res.Writes, writePair{Clients: c, Tokenstore: toFigure(ss[0]), Etcd: toFigure(ss[1])})
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(e.out)
	fmt.Fprintf(e.out, "(3) writes at the leader, fsync on, %v per round after %v of unreported warm-up per system: tokenstore CreateToken vs etcd Put of a record of the same size\n", e.cfg.duration, writesWarmup*e.cfg.duration)
	lg.PrintRounds(e.out, "op", "writes/s", all, e.procs.Names)
	return nil
}

// failoverRun is one leader kill of issue 9 (4).
type failoverRun struct {
	System  string  `json:"system"`
	Round   int     `json:"round"`
	Killed  string  `json:"killed"`
	Leader  string  `json:"new_leader"`
	Elected float64 `json:"time_to_leader_ms"`
	// By read mode: authentications answered and failed at the survivors,
	// and the slowest answered one.
	Modes []failoverMode `json:"modes"`
}

type failoverMode struct {
	Mode    string  `json:"mode"`
	OK      int     `json:"ok"`
	Failed  int     `json:"failed"`
	Slowest float64 `json:"slowest_ms"`
	Sample  string  `json:"sample,omitempty"`
}

// failoverPhase is issue 9 (4): for each system in turn, authentication
// load at both followers (half the clients in each of the system's two
// read modes), SIGKILL of the leader a second in, load kept for
// cfg.failoverAfter more; then the killed member is restarted and caught
// up before the next run.
func (e *env) failoverPhase(ctx context.Context) error {
	t, d, err := e.sides(ctx)
	if err != nil {
		return err
	}
	for r := 1; r <= e.cfg.failoverRounds && ctx.Err() == nil; r++ {
		for _, sys := range lg.ABBA([]string{"tokenstore", "etcd"}, r) {
			var fr failoverRun
			var err error
			if sys == "tokenstore" {
				fr, err = e.failoverTokenstore(ctx, t)
			} else {
				fr, err = e.failoverEtcd(ctx, d)
			}
			if err != nil {
				return err
			}
			fr.Round = r
			e.res.Failover = append(e.res.Failover, fr)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(e.out)
	fmt.Fprintf(e.out, "(4) leader SIGKILLed 1s into authentication load at both followers (%d clients per mode, spread over the survivors), load kept %v after the kill; request timeout %v\n",
		e.cfg.concurrency/2, e.cfg.failoverAfter, e.cfg.failoverTimeout)
	tw := newTable(e.out)
	fmt.Fprintln(tw, "round\tsystem\tkilled\tnew leader\ttime to leader\tmode\tok\tfailed\tslowest ok\t")
	for _, f := range e.res.Failover {
		for _, m := range f.Modes {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.0fms\t%s\t%d\t%d\t%.0fms\t\n", f.Round, f.System, f.Killed, f.Leader, f.Elected, m.Mode, m.OK, m.Failed, m.Slowest)
		}
	}
	tw.Flush()
	for _, f := range e.res.Failover {
		for _, m := range f.Modes {
			if m.Sample != "" {
				fmt.Fprintf(e.out, "  round %d %s %s: %s\n", f.Round, f.System, m.Mode, m.Sample)
			}
		}
	}
	return nil
}

// spread runs one op per survivor, client w going to survivor w%len.
func spread(ops []lg.Op) lg.Op {
	return func(ctx context.Context, w, seq int) error { return ops[w%len(ops)](ctx, w/len(ops), seq) }
}

// killDuringLoad runs the modes' loads for 1s + after, kills the leader at
// 1s with kill and polls elected (every 10 ms) until it names a new leader.
func (e *env) killDuringLoad(ctx context.Context, modes []string, ops []lg.Op, kill func(), elected func(context.Context) string) ([]failoverMode, string, time.Duration) {
	results := make([]lg.RoundResult, len(ops))
	var wg sync.WaitGroup
	for i := range ops {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = lg.RunRound(ctx, e.cfg.concurrency/2, time.Second+e.cfg.failoverAfter, withTimeout(e.cfg.failoverTimeout, ops[i]))
		}(i)
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	kill()
	var leader string
	var took time.Duration
	for ctx.Err() == nil && time.Since(t0) < 30*time.Second {
		if leader = elected(ctx); leader != "" {
			took = time.Since(t0)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	var out []failoverMode
	for i, r := range results {
		m := failoverMode{Mode: modes[i], OK: r.OK, Failed: r.Failures()}
		if len(r.Lat) > 0 {
			m.Slowest = ms(r.Lat[len(r.Lat)-1])
		}
		if len(r.Samples) > 0 {
			m.Sample = r.Samples[0]
		}
		out = append(out, m)
	}
	return out, leader, took
}

func (e *env) failoverTokenstore(ctx context.Context, t *tsSide) (failoverRun, error) {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	leader, err := e.ts.Leader(lctx)
	if err != nil {
		return failoverRun{}, err
	}
	survivors := e.ts.Followers(leader)
	modes := []lg.ReadMode{lg.Bounded, lg.Linearizable}
	var ops []lg.Op
	for _, mode := range modes {
		var per []lg.Op
		for _, m := range survivors {
			auth, err := e.pool.Auth(m)
			if err != nil {
				return failoverRun{}, err
			}
			per = append(per, lg.AuthOp(auth, t.set, mode, m.Name))
		}
		ops = append(ops, spread(per))
	}
	elected := func(ctx context.Context) string {
		for _, m := range survivors {
			qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			st, err := m.Cluster.Status(qctx, &tokenstorev1.StatusRequest{})
			cancel()
			if err == nil && st.GetLeaderName() != "" && st.GetLeaderName() != leader.Name {
				return st.GetLeaderName()
			}
		}
		return ""
	}
	fm, newLeader, took := e.killDuringLoad(ctx, []string{"bounded", "linearizable"}, ops, func() { e.ts.Kill(leader) }, elected)
	if err := e.ts.Start(leader); err != nil {
		return failoverRun{}, err
	}
	e.procs.PIDs[leader.Name] = leader.Pid()
	if err := e.ts.WaitReady(lctx); err != nil {
		return failoverRun{}, err
	}
	return failoverRun{System: "tokenstore", Killed: leader.Name, Leader: newLeader, Elected: ms(took), Modes: fm}, nil
}

func (e *env) failoverEtcd(ctx context.Context, d *etcdSide) (failoverRun, error) {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	leader, err := e.et.leader(lctx)
	if err != nil {
		return failoverRun{}, err
	}
	st, err := leader.status(lctx)
	if err != nil {
		return failoverRun{}, err
	}
	oldID := st.Header.GetMemberId()
	survivors := e.et.followers(leader)
	var ser, lin []lg.Op
	for _, m := range survivors {
		clis, err := e.etcdClients(m)
		if err != nil {
			return failoverRun{}, err
		}
		ser = append(ser, etcdAuthOp(clis, d.set, true))
		lin = append(lin, etcdAuthOp(clis, d.set, false))
	}
	elected := func(ctx context.Context) string {
		for _, m := range survivors {
			st, err := m.status(ctx)
			if err == nil && st.Leader != 0 && st.Leader != oldID {
				for _, o := range survivors {
					if s2, err := o.status(ctx); err == nil && s2.Header.GetMemberId() == st.Leader {
						return o.Name
					}
				}
				return fmt.Sprintf("%x", st.Leader)
			}
		}
		return ""
	}
	fm, newLeader, took := e.killDuringLoad(ctx, []string{"serializable", "linearizable"}, []lg.Op{spread(ser), spread(lin)}, leader.kill, elected)
	if err := e.et.start(leader); err != nil {
		return failoverRun{}, err
	}
	if err := leader.waitReady(lctx); err != nil {
		return failoverRun{}, err
	}
	e.procs.PIDs[leader.Name] = leader.pid()
	return failoverRun{System: "etcd", Killed: leader.Name, Leader: newLeader, Elected: ms(took), Modes: fm}, nil
}
