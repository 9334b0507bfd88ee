package history

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const ms = int64(time.Millisecond)

// h builds histories: times in milliseconds.
type h struct{ ops []*Op }

func (b *h) add(op Op, call, ret int64) *Op {
	op.Call, op.Return = call*ms, ret*ms
	if op.TokenID == "" {
		op.TokenID = "t1"
	}
	if op.Outcome == "" {
		op.Outcome = OK
	}
	o := op
	b.ops = append(b.ops, &o)
	return &o
}

func tok(desc string, disabled, revoked bool) *Token {
	return &Token{Description: desc, Disabled: disabled, Revoked: revoked}
}

func (b *h) create(call, ret int64) {
	b.add(Op{Kind: Create, Label: "c1", Description: "d0", Token: tok("d0", false, false)}, call, ret)
}

func lin(t *testing.T, ops []*Op, stale time.Duration) porcupine.CheckResult {
	t.Helper()
	return CheckLinearizable("test", ops, stale, false, 10*time.Second).Result
}

func TestModelSequential(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Authenticated: true}, 11, 12)
	b.add(Op{Kind: Update, Description: "u1", Disabled: true, Token: tok("u1", true, false)}, 13, 20)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Reason: "DISABLED"}, 21, 22)
	b.add(Op{Kind: Get, Consistency: Linearizable, Found: true, Token: tok("u1", true, false)}, 23, 24)
	b.add(Op{Kind: Revoke, Token: tok("u1", true, true)}, 25, 30)
	b.add(Op{Kind: Update, Description: "u2", Outcome: Refused, Code: "FailedPrecondition"}, 31, 32)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Reason: "REVOKED"}, 33, 34)
	if r := lin(t, b.ops, 0); r != porcupine.Ok {
		t.Fatalf("sequential history: %s", r)
	}
}

func TestModelStaleLinearizableRead(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Revoke, Token: tok("d0", false, true)}, 11, 20)
	// Called after the revoke returned, still authenticated: stale.
	b.add(Op{Kind: Verify, Consistency: Linearizable, Authenticated: true}, 25, 26)
	if r := lin(t, b.ops, 0); r != porcupine.Illegal {
		t.Fatalf("stale linearizable read: %s, want Illegal", r)
	}
}

func TestModelConcurrentReadMaySeeEither(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Update, Description: "u1", Disabled: true, Token: tok("u1", true, false)}, 11, 20)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Authenticated: true}, 12, 19)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Reason: "DISABLED"}, 13, 18)
	if r := lin(t, b.ops, 0); r != porcupine.Ok {
		t.Fatalf("concurrent reads: %s", r)
	}
	// But not new-then-old in real-time order.
	b.add(Op{Kind: Verify, Consistency: Linearizable, Reason: "DISABLED"}, 21, 22)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Authenticated: true}, 23, 24)
	if r := lin(t, b.ops, 0); r != porcupine.Illegal {
		t.Fatalf("old after new: %s, want Illegal", r)
	}
}

func TestModelUnknownWrite(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Update, Description: "u1", Disabled: true, Outcome: Unknown, Code: "DeadlineExceeded"}, 11, 20)
	// Not yet visible, then visible long after the call returned: fine.
	b.add(Op{Kind: Get, Consistency: Linearizable, Found: true, Token: tok("d0", false, false)}, 21, 22)
	b.add(Op{Kind: Get, Consistency: Linearizable, Found: true, Token: tok("u1", true, false)}, 100, 101)
	if r := lin(t, b.ops, 0); r != porcupine.Ok {
		t.Fatalf("late unknown write: %s", r)
	}
	// Visible, then gone: no.
	b.add(Op{Kind: Get, Consistency: Linearizable, Found: true, Token: tok("d0", false, false)}, 102, 103)
	if r := lin(t, b.ops, 0); r != porcupine.Illegal {
		t.Fatalf("unknown write undone: %s, want Illegal", r)
	}
}

func TestModelUnknownWriteNeverApplied(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Revoke, Outcome: Unknown, Code: "Unavailable"}, 11, 20)
	b.add(Op{Kind: Verify, Consistency: Linearizable, Authenticated: true}, 30, 31)
	if r := lin(t, b.ops, 0); r != porcupine.Ok {
		t.Fatalf("unknown revoke never applied: %s", r)
	}
}

func TestModelBoundedStaleness(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Revoke, Token: tok("d0", false, true)}, 11, 20)
	// A bounded read 1.5 s after the revoke returned may still be stale
	// under a 2 s bound ...
	b.add(Op{Kind: Verify, Consistency: Bounded, Authenticated: true}, 1520, 1521)
	if r := lin(t, b.ops, 2*time.Second); r != porcupine.Ok {
		t.Fatalf("bounded read within bound: %s", r)
	}
	if v := CheckRevoked(b.ops, 2*time.Second); len(v) != 0 {
		t.Fatalf("CheckRevoked within bound: %v", v)
	}
	// ... but not 2.5 s after.
	b.add(Op{Kind: Verify, Consistency: Bounded, Authenticated: true}, 2520, 2521)
	if r := lin(t, b.ops, 2*time.Second); r != porcupine.Illegal {
		t.Fatalf("bounded read beyond bound: %s, want Illegal", r)
	}
	if v := CheckRevoked(b.ops, 2*time.Second); len(v) != 1 {
		t.Fatalf("CheckRevoked beyond bound: %v", v)
	}
	// The linearizable check ignores bounded reads.
	if r := lin(t, b.ops, 0); r != porcupine.Ok {
		t.Fatalf("linearizable check with stale bounded reads: %s", r)
	}
}

func TestModelBoundedReadMaySeeAbsentToken(t *testing.T) {
	var b h
	b.create(0, 10)
	b.add(Op{Kind: Get, Consistency: Bounded}, 500, 501) // NotFound: stale but within 2 s
	b.add(Op{Kind: Verify, Consistency: Bounded, Reason: "UNKNOWN"}, 600, 601)
	if r := lin(t, b.ops, 2*time.Second); r != porcupine.Ok {
		t.Fatalf("bounded read before create within bound: %s", r)
	}
	b.add(Op{Kind: Get, Consistency: Linearizable}, 700, 701)
	if r := lin(t, b.ops, 2*time.Second); r != porcupine.Illegal {
		t.Fatalf("linearizable NotFound after create: %s, want Illegal", r)
	}
}

func TestCheckMonotonic(t *testing.T) {
	var b h
	b.add(Op{Kind: Get, Consistency: Bounded, Found: true, Revision: 10, AnsweredBy: "n1"}, 0, 10)
	b.add(Op{Kind: Get, Consistency: Bounded, Found: true, Revision: 9, AnsweredBy: "n2"}, 11, 12) // other member: fine
	b.add(Op{Kind: Get, Consistency: Bounded, Found: true, Revision: 9, AnsweredBy: "n1"}, 5, 12)  // concurrent: fine
	if v := CheckMonotonic(b.ops); len(v) != 0 {
		t.Fatalf("monotonic: %v", v)
	}
	b.add(Op{Kind: Get, Consistency: Bounded, Found: true, Revision: 9, AnsweredBy: "n1"}, 13, 14)
	if v := CheckMonotonic(b.ops); len(v) != 1 {
		t.Fatalf("revision went back: %v", v)
	}
}

func TestCheckCreatesAndRevisions(t *testing.T) {
	var b h
	c := b.add(Op{Kind: Create, Label: "c1", Description: "d0", Token: tok("d0", false, false)}, 0, 10)
	b.add(Op{Kind: Create, Label: "c2", Description: "d2", Outcome: Unknown, TokenID: "-"}, 0, 10).TokenID = ""
	final := Final{
		"n1": {"t1": {Label: "c1", Description: "d0"}, "t2": {Label: "c2"}},
		"n2": {"t2": {Label: "c2"}, "t3": {Label: "c2"}, "t4": {Label: "zz"}},
	}
	Resolve(b.ops, final)
	if id := b.ops[1].TokenID; (id != "t2" && id != "t3") || !b.ops[1].Resolved {
		t.Fatalf("unknown create not resolved: %+v", b.ops[1])
	}
	v := CheckCreates(b.ops, final)
	// n2 lost t1, lists two tokens for c2, and a phantom.
	if len(v) != 3 {
		t.Fatalf("want 3 violations, got %v", v)
	}
	_ = c
	var r h
	r.add(Op{Kind: Get, Found: true, Revision: 7, Token: &Token{Description: "a", UpdateRevision: 5}}, 0, 1)
	r.add(Op{Kind: Get, Found: true, Revision: 7, Token: &Token{Description: "a", UpdateRevision: 5}}, 0, 1)
	if v := CheckRevisions(r.ops); len(v) != 0 {
		t.Fatalf("agreeing answers: %v", v)
	}
	r.add(Op{Kind: Get, Found: true, Revision: 7, Token: &Token{Description: "b", UpdateRevision: 6}}, 0, 1)
	r.add(Op{Kind: Get, Found: true, Revision: 9, Token: &Token{Description: "a", UpdateRevision: 8}}, 0, 1)
	if v := CheckRevisions(r.ops); len(v) != 2 {
		t.Fatalf("want divergence and double apply, got %v", v)
	}
}
