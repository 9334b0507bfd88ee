package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/cluster-test/history"
)

// Check is one check's outcome.
type Check struct {
	Name   string
	Passed bool
	Detail string
}

// Result is what a run found.
type Result struct {
	Config Config
	// Dir is the run's directory, kept when a check failed (or Keep);
	// empty once removed.
	Dir    string
	Steps  []Step
	Events []event
	Ops    []*history.Op
	Checks []Check
	// Violations lists every broken promise (empty when all passed).
	Violations []history.Violation
	// Known lists violations of known, unfixed server bugs (see
	// knownIssues); they fail the run only with Config.Strict.
	Known []KnownViolation
	// Elections counts leaders elected during the run (from the logs).
	Elections int
	Took      time.Duration
}

// KnownViolation is a violation of a known issue.
type KnownViolation struct {
	Issue     string
	Violation history.Violation
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool {
	for _, c := range r.Checks {
		if !c.Passed {
			return true
		}
	}
	return false
}

// Run runs one campaign: start a cluster with proxies, run clients and the
// fault schedule for cfg.Duration, heal, check. The error is for a run
// that could not be carried out (the cluster never started); what the
// checks found is in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.Defaults()
	began := time.Now()
	res := &Result{Config: cfg}
	dir := filepath.Join(cfg.Out, fmt.Sprintf("%s-seed%d-%s", cfg.Name, cfg.Seed, began.Format("20060102-150405.000")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res.Dir = dir
	log := cfg.Log
	log("campaign %s: seed %d, %v, %d members, %d clients, max staleness %v; files in %s",
		cfg.Name, cfg.Seed, cfg.Duration, cfg.Members, cfg.Clients, cfg.MaxStaleness, dir)

	h, err := harness.New(cfg.Bin, filepath.Join(dir, "cluster"), harness.Options{Size: cfg.Members, Extra: cfg.memberFlags(), Proxies: true})
	if err != nil {
		return res, err
	}
	c := newCluster(h)
	defer c.Stop()
	if c.HasFlag("catch-up-entries") {
		c.Extra = append(c.Extra, "--catch-up-entries", "50")
	}
	if err := c.StartAll(); err != nil {
		return res, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.WaitReady(rctx)
	cancel()
	if err != nil {
		return res, err
	}

	res.Steps = Schedule(cfg.Seed, cfg.Duration, cfg.Faults, cfg.Timing)
	log("fault schedule (seed %d):", cfg.Seed)
	for _, s := range res.Steps {
		log("  %s", s)
	}

	rec := history.NewRecorder()
	w := &workload{c: c, rec: rec, cfg: &cfg}
	nem := newNemesis(c, rec.Start(), log)
	wctx, stopClients := context.WithCancel(ctx)
	nctx, stopNemesis := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.run(wctx) }()
	nemDone := make(chan struct{})
	go func() { defer wg.Done(); defer close(nemDone); nem.run(nctx, res.Steps) }()
	sleepCtx(ctx, cfg.Duration)
	stopNemesis()
	<-nemDone
	log("faults healed at %.2fs (%s); clients run on for a moment", time.Since(rec.Start()).Seconds(), c.Net.Describe())
	sleepCtx(ctx, 2*time.Second)
	stopClients()
	wg.Wait()
	res.Events = nem.Events()

	// Every member serves again, then all agree.
	hctx, cancel := context.WithTimeout(ctx, cfg.Heal)
	defer cancel()
	// A removal that timed out may have taken effect after all.
	for {
		gone, err := c.Reconcile(hctx)
		if err == nil {
			if len(gone) > 0 {
				log("membership reconciled (a removal or add that timed out took effect): %v", gone)
			}
			break
		}
		if hctx.Err() != nil {
			log("membership after the heal: %v", err)
			break
		}
		sleepCtx(hctx, 200*time.Millisecond)
	}
	chk := &checker{c: c, rec: rec, w: w, cfg: &cfg, log: log}
	res.Checks = append(res.Checks, chk.serving(hctx))
	// Agreement gets its own time: a member that does not serve must not
	// also make this check fail.
	cctx, cancelConv := context.WithTimeout(ctx, cfg.Heal/2)
	defer cancelConv()
	final, conv := chk.converge(cctx)
	res.Checks = append(res.Checks, conv, proxyCheck(c.Net))

	// The history.
	res.Ops = rec.Ops()
	history.Resolve(res.Ops, final)
	add := func(name string, all []history.Violation) {
		var vs []history.Violation
		for _, v := range all {
			if k := knownIssueOf(v); k != nil && !cfg.Strict {
				res.Known = append(res.Known, KnownViolation{Issue: k.ID, Violation: v})
				continue
			}
			vs = append(vs, v)
		}
		res.Violations = append(res.Violations, vs...)
		c := Check{Name: name, Passed: len(vs) == 0}
		if c.Passed {
			c.Detail = fmt.Sprintf("%d operations", len(res.Ops))
		}
		for i, v := range vs {
			if i == 5 {
				c.Detail += fmt.Sprintf("\n... and %d more", len(vs)-5)
				break
			}
			c.Detail += "\n" + v.String()
		}
		res.Checks = append(res.Checks, c)
	}
	for _, ch := range res.Checks {
		if !ch.Passed {
			res.Violations = append(res.Violations, history.Violation{Check: ch.Name, Detail: ch.Detail})
		}
	}
	add("no member exited on its own", chk.crashes())
	add("no acknowledged create lost, none applied twice", history.CheckCreates(res.Ops, final))
	add("no authentication after an acknowledged revoke (+ staleness bound for bounded)", history.CheckRevoked(res.Ops, cfg.MaxStaleness))
	add("revisions never go back on a member", history.CheckMonotonic(res.Ops))
	add("answers at one revision agree; no write applied twice", history.CheckRevisions(res.Ops))
	lins := []history.Linearizability{
		history.CheckLinearizable("linearizable: writes and linearizable reads", res.Ops, 0, false, cfg.CheckTimeout),
		history.CheckLinearizable("bounded staleness: bounded reads as of call − max-staleness", res.Ops, cfg.MaxStaleness, false, cfg.CheckTimeout),
	}
	var failedLin *history.Linearizability
	for i, l := range lins {
		ch := Check{Name: "porcupine " + l.Name, Passed: l.Result == porcupine.Ok,
			Detail: fmt.Sprintf("%s: %d operations on %d tokens, checked in %v", l.Result, l.Operations, l.Tokens, l.Took.Round(time.Millisecond))}
		if l.Result == porcupine.Unknown {
			ch.Detail += " (timed out: not decided)"
		}
		if l.Result == porcupine.Illegal && failedLin == nil {
			// Token by token: which histories break, and how far they go.
			ch.Detail += "\n" + history.Explain(res.Ops, l.MaxStaleness, 3, cfg.CheckTimeout)
		}
		res.Checks = append(res.Checks, ch)
		if !ch.Passed {
			res.Violations = append(res.Violations, history.Violation{Check: ch.Name, Detail: ch.Detail})
			if failedLin == nil {
				failedLin = &lins[i]
			}
		}
	}
	res.Elections = countElections(c)
	res.Took = time.Since(began)

	c.Stop()
	if res.Failed() || cfg.Keep {
		if err := saveRun(res, failedLin, c); err != nil {
			log("saving the run: %v", err)
		}
	} else {
		if err := os.RemoveAll(dir); err == nil {
			res.Dir = ""
		}
	}
	return res, nil
}

// proxyCheck confirms that the proxies knew which member opened every
// peer connection, so every fault rule applied to the traffic it named.
func proxyCheck(n *harness.Network) Check {
	ch := Check{Name: "every peer connection attributed to its link (faults applied as scheduled)"}
	links, conns := 0, 0
	for _, c := range n.Accepted() {
		links++
		conns += c
	}
	ch.Passed = n.Unknown() == 0
	ch.Detail = fmt.Sprintf("%d connections on %d links, %d unattributed, %d closed by their opener before attribution (refused)", conns, links, n.Unknown(), n.Dead())
	return ch
}

// annotations are the faults, drawn on porcupine's visualisation.
func annotations(evs []event) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, e := range evs {
		if e.Skipped != "" {
			continue
		}
		out = append(out, porcupine.Annotation{
			Tag: "nemesis", Start: int64(e.Start), End: int64(e.End),
			Description: string(e.Fault), Details: e.What, BackgroundColor: "#f6d2d2",
		})
	}
	return out
}
