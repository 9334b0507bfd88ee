package history

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// state is one token as the model knows it.
type state struct {
	Exists   bool
	Disabled bool
	Revoked  bool
	Desc     string
}

func (s state) String() string {
	if !s.Exists {
		return "absent"
	}
	return fmt.Sprintf("{disabled=%v revoked=%v desc=%s}", s.Disabled, s.Revoked, s.Desc)
}

// verdict is what Authenticate must answer in state s (tokens have no
// expiry in these histories).
func (s state) verdict() (bool, string) {
	switch {
	case !s.Exists:
		return false, "UNKNOWN"
	case s.Revoked:
		return false, "REVOKED"
	case s.Disabled:
		return false, "DISABLED"
	}
	return true, ""
}

// matches reports whether an answered token shows state s.
func (s state) matches(t *Token) bool {
	return t != nil && s.Exists && t.Disabled == s.Disabled && t.Revoked == s.Revoked && t.Description == s.Desc
}

// apply is the state after write op took effect in state s, and whether
// op's answer (if it has one) is possible from s.
func apply(s state, op *Op) (state, bool) {
	switch op.Kind {
	case Create:
		if s.Exists {
			return s, false
		}
		n := state{Exists: true, Desc: op.Description}
		if op.Outcome == OK && !n.matches(op.Token) {
			return s, false
		}
		return n, true
	case Update:
		switch {
		case !s.Exists:
			return s, op.Outcome != OK && (op.Outcome != Refused || op.Code == "NotFound")
		case s.Revoked:
			return s, op.Outcome != OK && (op.Outcome != Refused || op.Code == "FailedPrecondition")
		}
		if op.Outcome == Refused {
			return s, false
		}
		n := s
		n.Disabled, n.Desc = op.Disabled, op.Description
		if op.Outcome == OK && !n.matches(op.Token) {
			return s, false
		}
		return n, true
	case Revoke:
		if !s.Exists {
			return s, op.Outcome != OK && (op.Outcome != Refused || op.Code == "NotFound")
		}
		if op.Outcome == Refused {
			return s, false
		}
		n := s
		n.Revoked = true
		if op.Outcome == OK && !n.matches(op.Token) {
			return s, false
		}
		return n, true
	}
	return s, false
}

// step is the nondeterministic transition: the states op can lead to
// from s given its answer; none when the answer is impossible.
func step(st, in, _ any) []any {
	s := st.(state)
	op := in.(*Op)
	switch op.Kind {
	case Verify:
		ok, reason := s.verdict()
		if ok == op.Authenticated && reason == op.Reason {
			return []any{s}
		}
		return nil
	case Get:
		if !op.Found {
			if !s.Exists {
				return []any{s}
			}
			return nil
		}
		if s.matches(op.Token) {
			return []any{s}
		}
		return nil
	}
	n, ok := apply(s, op)
	if op.Outcome == Unknown {
		// Maybe applied: either not (yet), or with its effect.
		return []any{s, n}
	}
	if !ok {
		return nil
	}
	return []any{n}
}

// Model is the porcupine model of one token's life. Operations are
// partitioned by token id: tokens are independent objects.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var ids []string
			for _, o := range history {
				id := o.Input.(*Op).TokenID
				if _, ok := by[id]; !ok {
					ids = append(ids, id)
				}
				by[id] = append(by[id], o)
			}
			sort.Strings(ids)
			out := make([][]porcupine.Operation, 0, len(ids))
			for _, id := range ids {
				out = append(out, by[id])
			}
			return out
		},
		Init:  func() []any { return []any{state{}} },
		Step:  step,
		Equal: func(a, b any) bool { return a.(state) == b.(state) },
		Hash: func(a any) uint64 {
			s := a.(state)
			h := fnv.New64a()
			fmt.Fprintf(h, "%v/%v/%v/%s", s.Exists, s.Disabled, s.Revoked, s.Desc)
			return h.Sum64()
		},
		DescribeOperation: func(in, _ any) string {
			op := in.(*Op)
			return op.describe()
		},
		DescribeState: func(st any) string { return st.(state).String() },
	}
	return nm.ToModel()
}

// describe is the short form shown in porcupine's visualisation.
func (op *Op) describe() string {
	var s string
	switch op.Kind {
	case Create:
		s = fmt.Sprintf("create(%s)", op.Description)
	case Update:
		s = fmt.Sprintf("update(disabled=%v,%s)", op.Disabled, op.Description)
	case Revoke:
		s = "revoke()"
	case Verify:
		s = fmt.Sprintf("verify[%s]", op.Consistency)
	case Get:
		s = fmt.Sprintf("get[%s]", op.Consistency)
		if op.Final {
			s = "final-list"
		}
	}
	s += "@" + op.Member + " -> "
	switch {
	case op.Outcome == Unknown:
		s += "unknown (" + op.Code + ")"
	case op.Outcome == Refused:
		s += "refused " + op.Code
	case op.Kind == Verify && op.Authenticated:
		s += "authenticated"
	case op.Kind == Verify:
		s += "denied " + op.Reason
	case op.Kind == Get && !op.Found:
		s += "not found"
	case op.Token != nil:
		s += fmt.Sprintf("{disabled=%v revoked=%v desc=%s}", op.Token.Disabled, op.Token.Revoked, op.Token.Description)
	default:
		s += "ok"
	}
	if op.Revision != 0 {
		s += fmt.Sprintf(" rev %d", op.Revision)
	}
	return s
}
