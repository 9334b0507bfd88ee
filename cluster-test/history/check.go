package history

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one broken promise found in a history.
type Violation struct {
	Check  string
	Detail string
	// Ops are the operations involved, when the check names them.
	Ops []*Op
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// Linearizability is the result of one porcupine check.
type Linearizability struct {
	// Name says which operations were checked.
	Name string
	// MaxStaleness is the window bounded reads were checked with (0: left
	// out).
	MaxStaleness time.Duration
	Result       porcupine.CheckResult
	Operations   int
	Tokens       int
	Took         time.Duration
	// Info is set when the check ran verbose (for the visualisation).
	Info *porcupine.LinearizationInfo
}

// LinearizableOps selects the operations porcupine checks: every write
// with a known token (an unknown write may take effect at any moment after
// its call, so its return is moved past the end of the history) and every
// read that answered. Bounded reads are left out unless maxStaleness > 0;
// then each is checked as if called maxStaleness earlier than it was: the
// promise of a bounded read is to reflect every write acknowledged before
// its call minus the bound, so it may take effect anywhere in
// [call − maxStaleness, return].
func LinearizableOps(ops []*Op, maxStaleness time.Duration) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		if op.Return > end {
			end = op.Return
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		if op.TokenID == "" {
			continue
		}
		call, ret := op.Call, op.Return
		switch {
		case op.IsWrite():
			if op.Outcome == Failed {
				continue
			}
			if op.Outcome == Unknown {
				ret = end + 1
			}
		case op.Outcome != OK:
			continue
		case op.Consistency == Bounded:
			if maxStaleness <= 0 {
				continue
			}
			call -= int64(maxStaleness)
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: call, Return: ret})
	}
	return out
}

// CheckLinearizable runs porcupine on the operations LinearizableOps
// selects. verbose computes what the visualisation needs (slower); timeout
// 0 means none.
func CheckLinearizable(name string, ops []*Op, maxStaleness time.Duration, verbose bool, timeout time.Duration) Linearizability {
	h := LinearizableOps(ops, maxStaleness)
	tokens := map[string]bool{}
	for _, o := range h {
		tokens[o.Input.(*Op).TokenID] = true
	}
	r := Linearizability{Name: name, MaxStaleness: maxStaleness, Operations: len(h), Tokens: len(tokens)}
	began := time.Now()
	if verbose {
		res, info := porcupine.CheckOperationsVerbose(Model(), h, timeout)
		r.Result, r.Info = res, &info
	} else {
		r.Result = porcupine.CheckOperationsTimeout(Model(), h, timeout)
	}
	r.Took = time.Since(began)
	return r
}

// Visualize writes porcupine's HTML visualisation of a verbose check, with
// annotations (faults, leaders) added.
func (l Linearizability) Visualize(path string, notes []porcupine.Annotation) error {
	if l.Info == nil {
		return fmt.Errorf("check %s did not run verbose", l.Name)
	}
	l.Info.AddAnnotations(notes)
	return porcupine.VisualizePath(Model(), *l.Info, path)
}

// Final is what the final listing showed: member → token id → token.
type Final map[string]map[string]*Token

// Resolve finds the tokens of unknown creates in the final listing by
// their unique label, so they join their token's history.
func Resolve(ops []*Op, final Final) {
	byLabel := map[string]string{}
	for _, toks := range final {
		for id, t := range toks {
			byLabel[t.Label] = id
		}
	}
	for _, op := range ops {
		if op.Kind == Create && op.Outcome == Unknown && op.TokenID == "" {
			if id, ok := byLabel[op.Label]; ok {
				op.TokenID = id
				op.Resolved = true
			}
		}
	}
}

// CheckCreates: every acknowledged create is in every member's final
// listing; every listed token was created by this history (its label is
// one a create carried) and no label names two tokens (no write applied
// twice).
func CheckCreates(ops []*Op, final Final) []Violation {
	var out []Violation
	labels := map[string]*Op{}
	for _, op := range ops {
		if op.Kind == Create {
			labels[op.Label] = op
		}
	}
	members := sortedKeys(final)
	for _, op := range ops {
		if op.Kind != Create || op.Outcome != OK {
			continue
		}
		for _, m := range members {
			if _, ok := final[m][op.TokenID]; !ok {
				out = append(out, Violation{Check: "lost create", Detail: fmt.Sprintf("acknowledged create %s is missing from %s's final listing", op, m), Ops: []*Op{op}})
			}
		}
	}
	for _, m := range members {
		seen := map[string]string{}
		for _, id := range sortedKeys(final[m]) {
			t := final[m][id]
			c, ok := labels[t.Label]
			switch {
			case !ok:
				out = append(out, Violation{Check: "phantom token", Detail: fmt.Sprintf("%s lists token %s with label %q that no create carried", m, id, t.Label)})
			case c.Outcome == OK && c.TokenID != id:
				out = append(out, Violation{Check: "duplicate create", Detail: fmt.Sprintf("%s lists token %s with the label of create %s", m, id, c)})
			}
			if other, dup := seen[t.Label]; dup {
				out = append(out, Violation{Check: "duplicate create", Detail: fmt.Sprintf("%s lists tokens %s and %s with one label %q: a create applied twice", m, other, id, t.Label)})
			}
			seen[t.Label] = id
		}
	}
	return out
}

// CheckRevoked: no verify called after a revoke of its token was
// acknowledged authenticates it — linearizable verifies from the
// acknowledgement on, bounded ones from the acknowledgement plus
// maxStaleness.
func CheckRevoked(ops []*Op, maxStaleness time.Duration) []Violation {
	revoked := map[string]*Op{} // earliest acknowledged revoke per token
	for _, op := range ops {
		if op.Kind == Revoke && op.Outcome == OK {
			if r, ok := revoked[op.TokenID]; !ok || op.Return < r.Return {
				revoked[op.TokenID] = op
			}
		}
	}
	var out []Violation
	for _, op := range ops {
		if op.Kind != Verify || op.Outcome != OK || !op.Authenticated {
			continue
		}
		r, ok := revoked[op.TokenID]
		if !ok {
			continue
		}
		limit := r.Return
		if op.Consistency == Bounded {
			limit += int64(maxStaleness)
		}
		if op.Call > limit {
			out = append(out, Violation{Check: "authenticated after revoke", Detail: fmt.Sprintf("%s was called %v after %s returned (allowed: %v)",
				op, time.Duration(op.Call-r.Return), r, time.Duration(limit-r.Return)), Ops: []*Op{r, op}})
		}
	}
	return out
}

// CheckMonotonic: a member's revisions never go back. An operation called
// after another one answered by the same member returned carries a
// revision at least as high (applied indexes are durable with the state
// they describe, across restarts too).
func CheckMonotonic(ops []*Op) []Violation {
	by := map[string][]*Op{}
	for _, op := range ops {
		if op.Outcome == OK && op.Revision != 0 && op.AnsweredBy != "" {
			by[op.AnsweredBy] = append(by[op.AnsweredBy], op)
		}
	}
	var out []Violation
	for _, m := range sortedKeys(by) {
		list := by[m]
		byRet := append([]*Op(nil), list...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
		// best[i] is the op with the highest revision among byRet[:i+1].
		best := make([]*Op, len(byRet))
		for i, op := range byRet {
			best[i] = op
			if i > 0 && best[i-1].Revision > op.Revision {
				best[i] = best[i-1]
			}
		}
		for _, op := range list {
			i := sort.Search(len(byRet), func(i int) bool { return byRet[i].Return >= op.Call }) - 1
			if i >= 0 && best[i].Revision > op.Revision {
				out = append(out, Violation{Check: "revision went back", Detail: fmt.Sprintf("%s: %s answered at revision %d after %s had answered at %d",
					m, op, op.Revision, best[i], best[i].Revision), Ops: []*Op{best[i], op}})
				if len(out) > 20 {
					return out
				}
			}
		}
	}
	return out
}

// CheckRevisions: answers that show a token at a revision agree with each
// other (a token at revision r is the same on every member: no
// divergence), a token's update revision is never above the answer's, one
// written value (description, revoked) always shows the same update
// revision (no write applied twice), and an authentication answered at
// revision r says what the token at r (as a get, a listing or a write
// answer showed it) implies.
func CheckRevisions(ops []*Op) []Violation {
	type at struct {
		id  string
		rev uint64
	}
	type value struct {
		id, desc string
		revoked  bool
	}
	seenAt := map[at]*Op{}
	seenValue := map[value]*Op{}
	var out []Violation
	for _, op := range ops {
		if op.Outcome != OK || op.Token == nil {
			continue
		}
		t := op.Token
		// A get's token is read at its revision; a write's answer shows the
		// token as the write left it, at the write's index.
		if op.Revision != 0 && (op.Kind == Get || op.IsWrite()) {
			if t.UpdateRevision > op.Revision {
				out = append(out, Violation{Check: "revision", Detail: fmt.Sprintf("%s shows update revision %d above its revision %d", op, t.UpdateRevision, op.Revision), Ops: []*Op{op}})
			}
			k := at{op.TokenID, op.Revision}
			if o, ok := seenAt[k]; ok && !sameAt(o.Token, t) {
				out = append(out, Violation{Check: "divergence", Detail: fmt.Sprintf("token %s at revision %d: %s shows %+v, %s shows %+v", op.TokenID, op.Revision, o, *o.Token, op, *t), Ops: []*Op{o, op}})
			} else if !ok {
				seenAt[k] = op
			}
		}
		k := value{op.TokenID, t.Description, t.Revoked}
		if o, ok := seenValue[k]; ok && o.Token.UpdateRevision != t.UpdateRevision {
			out = append(out, Violation{Check: "write applied twice", Detail: fmt.Sprintf("token %s value (desc=%s revoked=%v) shows update revision %d in %s and %d in %s",
				op.TokenID, t.Description, t.Revoked, o.Token.UpdateRevision, o, t.UpdateRevision, op), Ops: []*Op{o, op}})
		} else if !ok {
			seenValue[k] = op
		}
	}
	for _, op := range ops {
		if op.Kind != Verify || op.Outcome != OK || op.Revision == 0 {
			continue
		}
		o, ok := seenAt[at{op.TokenID, op.Revision}]
		if !ok {
			continue
		}
		s := state{Exists: true, Disabled: o.Token.Disabled, Revoked: o.Token.Revoked}
		if auth, reason := s.verdict(); auth != op.Authenticated || reason != op.Reason {
			out = append(out, Violation{Check: "answer not from its revision", Detail: fmt.Sprintf("%s, but at revision %d the token was %+v (%s)", op, op.Revision, *o.Token, o), Ops: []*Op{op, o}})
		}
	}
	return out
}

// sameAt compares two views of a token at one revision: all of it is
// replicated state, lastUsedAt included.
func sameAt(a, b *Token) bool { return *a == *b }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Explain re-checks a history token by token and describes the first
// tokens whose operations cannot be linearized: every operation on the
// token in call order, and the longest prefix porcupine could linearize
// with the state after each step. It is what a reader of a failed run
// needs before opening the visualisation.
func Explain(ops []*Op, maxStaleness time.Duration, limit int, timeout time.Duration) string {
	h := LinearizableOps(ops, maxStaleness)
	by := map[string][]porcupine.Operation{}
	for _, o := range h {
		id := o.Input.(*Op).TokenID
		by[id] = append(by[id], o)
	}
	var b strings.Builder
	found := 0
	for _, id := range sortedKeys(by) {
		part := by[id]
		res, info := porcupine.CheckOperationsVerbose(Model(), part, timeout)
		if res == porcupine.Ok {
			continue
		}
		found++
		fmt.Fprintf(&b, "token %s: %s (%d operations)\n", id, res, len(part))
		sorted := append([]porcupine.Operation(nil), part...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
		for _, o := range sorted {
			op := o.Input.(*Op)
			note := ""
			if op.Consistency == Bounded && maxStaleness > 0 {
				note = fmt.Sprintf("   (checked as called at %s)", fmtNS(o.Call))
			}
			if op.IsWrite() && op.Outcome == Unknown {
				note = "   (may take effect any time after its call)"
			}
			fmt.Fprintf(&b, "  %s%s\n", op, note)
		}
		if lins := info.PartialLinearizations(); len(lins) > 0 {
			var best []int
			for _, l := range lins[0] {
				if len(l) > len(best) {
					best = l
				}
			}
			fmt.Fprintf(&b, "  longest linearizable prefix (%d of %d operations):\n", len(best), len(part))
			var st any = []any{state{}}
			m := Model()
			for _, i := range best {
				op := part[i].Input.(*Op)
				_, st = m.Step(st, op, op)
				fmt.Fprintf(&b, "    #%d %s  => %s\n", op.ID, op.describe(), m.DescribeState(st))
			}
			fmt.Fprintf(&b, "  no remaining operation can come next.\n")
		}
		if found == limit {
			break
		}
	}
	if found == 0 {
		return "every token's history is linearizable on its own\n"
	}
	return b.String()
}
