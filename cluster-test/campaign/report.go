package campaign

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/cluster-test/history"
)

// Summary is the report a run prints: operations by kind and outcome,
// faults injected, leader elections, every check, and a final
// "N passed, M failed" line.
func (r *Result) Summary() string {
	var b strings.Builder
	cfg := r.Config
	fmt.Fprintf(&b, "campaign %s: seed %d, %v of faults and clients, %d members, %d clients, max staleness %v, took %v\n",
		cfg.Name, cfg.Seed, cfg.Duration, cfg.Members, cfg.Clients, cfg.MaxStaleness, r.Took.Round(time.Millisecond))

	type key struct {
		kind string
		out  history.Outcome
	}
	counts := map[key]int{}
	kinds := map[string]bool{}
	for _, op := range r.Ops {
		k := string(op.Kind)
		if op.Consistency != "" {
			k += "/" + string(op.Consistency)
		}
		if op.Final {
			k = "final-list"
		}
		kinds[k] = true
		counts[key{k, op.Outcome}]++
	}
	fmt.Fprintf(&b, "operations: %d\n", len(r.Ops))
	for _, k := range sortedSet(kinds) {
		var parts []string
		total := 0
		for _, o := range []history.Outcome{history.OK, history.Refused, history.Unknown, history.Failed} {
			if n := counts[key{k, o}]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", o, n))
				total += n
			}
		}
		fmt.Fprintf(&b, "  %-24s %6d  (%s)\n", k, total, strings.Join(parts, ", "))
	}

	injected := map[Fault]int{}
	skipped := map[Fault]string{}
	for _, e := range r.Events {
		if e.Skipped != "" {
			skipped[e.Fault] = e.Skipped
		} else {
			injected[e.Fault]++
		}
	}
	fmt.Fprintf(&b, "faults: %d scheduled, %d injected\n", len(r.Steps), len(r.Events)-len(skipped))
	for _, f := range AllFaults {
		if n := injected[f]; n > 0 {
			fmt.Fprintf(&b, "  %-20s %d\n", f, n)
		}
	}
	for _, f := range AllFaults {
		if why, ok := skipped[f]; ok {
			fmt.Fprintf(&b, "  %-20s skipped: %s\n", f, why)
		}
	}
	fmt.Fprintf(&b, "leader elections: %d\n", r.Elections)
	passed, failed := 0, 0
	for _, c := range r.Checks {
		mark := "PASS"
		if c.Passed {
			passed++
		} else {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(&b, "%s %s: %s\n", mark, c.Name, strings.TrimPrefix(c.Detail, "\n"))
	}
	if len(r.Known) > 0 {
		counts := map[string]int{}
		example := map[string]history.Violation{}
		for _, k := range r.Known {
			if counts[k.Issue] == 0 {
				example[k.Issue] = k.Violation
			}
			counts[k.Issue]++
		}
		for _, ki := range knownIssues {
			if n := counts[ki.ID]; n > 0 {
				fmt.Fprintf(&b, "KNOWN ISSUE %s (%d times, not failing; CLUSTER_TEST_STRICT=1 fails): %s\n  e.g. %s\n", ki.ID, n, ki.Issue, example[ki.ID])
			}
		}
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "files: %s\n", r.Dir)
	}
	fmt.Fprintf(&b, "%d passed, %d failed (seed %d)\n", passed, failed, cfg.Seed)
	return b.String()
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// saveRun writes what a failed (or kept) run leaves behind: the history,
// porcupine's visualisation, the schedule and what the nemesis did, the
// report. The members' data directories and logs are already in Dir.
func saveRun(r *Result, failed *history.Linearizability, c *Cluster) error {
	dir := r.Dir
	if err := history.Save(filepath.Join(dir, "history.json"), r.Ops); err != nil {
		return err
	}
	var sched strings.Builder
	fmt.Fprintf(&sched, "seed %d\nschedule:\n", r.Config.Seed)
	for _, s := range r.Steps {
		fmt.Fprintf(&sched, "  %s\n", s)
	}
	fmt.Fprintf(&sched, "what happened (seconds from the history's start):\n")
	for _, e := range r.Events {
		if e.Skipped != "" {
			fmt.Fprintf(&sched, "  %8.3f          %-18s skipped: %s\n", e.Start.Seconds(), e.Fault, e.Skipped)
		} else {
			fmt.Fprintf(&sched, "  %8.3f–%8.3f %-18s %s\n", e.Start.Seconds(), e.End.Seconds(), e.Fault, e.What)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "faults.txt"), []byte(sched.String()), 0o644); err != nil {
		return err
	}
	// The visualisation of the failing porcupine check, or else of the
	// widest one (writes, linearizable and bounded reads).
	name := "bounded staleness"
	stale := r.Config.MaxStaleness
	if failed != nil {
		name, stale = failed.Name, failed.MaxStaleness
	}
	l := history.CheckLinearizable(name, r.Ops, stale, true, r.Config.CheckTimeout)
	if err := l.Visualize(filepath.Join(dir, "linearizability.html"), annotations(r.Events)); err != nil {
		return fmt.Errorf("visualisation: %w", err)
	}
	var ops strings.Builder
	for _, op := range sortedByCall(r.Ops) {
		ops.WriteString(op.String())
		ops.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "history.txt"), []byte(ops.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.txt"), []byte(r.Summary()+violations(r)), 0o644)
}

func violations(r *Result) string {
	if len(r.Violations) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nviolations:\n")
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	return b.String()
}

func sortedByCall(ops []*history.Op) []*history.Op {
	out := append([]*history.Op(nil), ops...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

var electedRE = regexp.MustCompile(`became leader at term (\d+)`)

// countElections counts the terms in which some member became leader, from
// the members' logs.
func countElections(c *Cluster) int {
	terms := map[string]bool{}
	for _, m := range c.Members {
		f, err := os.Open(m.LogPath)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			if mm := electedRE.FindStringSubmatch(s.Text()); mm != nil {
				terms[mm[1]] = true
			}
		}
		f.Close()
	}
	return len(terms)
}
