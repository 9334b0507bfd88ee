// Package history records what concurrent clients did to a tokenstore
// cluster (every call with its call and return time, input and answer) and
// checks the record: linearizability of the linearizable operations with
// porcupine, the staleness bound of bounded reads, no lost acknowledged
// create, no authentication after an acknowledged revoke, no divergence
// between members, and per-member revisions that never go back.
//
// A write that failed or timed out may still have been applied (the server
// says so: DeadlineExceeded, or a connection lost mid-call). Such a write
// has outcome Unknown: the model lets it take effect at any moment after
// its call, or never. Every write carries a value no other write carries
// (a unique description, and for creates a unique label), so a later read
// tells which writes happened.
//
// A Recorder is safe for concurrent use; the checks run on a finished
// history.
package history

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
)

// Kind is what an operation did.
type Kind string

// Operation kinds.
const (
	Create Kind = "create"
	Update Kind = "update" // set disabled and description
	Revoke Kind = "revoke"
	Verify Kind = "verify" // AuthService.Authenticate
	Get    Kind = "get"    // TokenService.GetToken, or one token of a ListTokens page
)

// Consistency of a read.
type Consistency string

// Read consistencies; writes have none.
const (
	Linearizable Consistency = "linearizable"
	Bounded      Consistency = "bounded"
)

// Outcome says what is known about an operation's effect.
type Outcome string

// Outcomes.
const (
	// OK: the call returned an answer.
	OK Outcome = "ok"
	// Refused: the write was applied as a deterministic refusal (not found,
	// revoked) and changed nothing; the refusal is an observation.
	Refused Outcome = "refused"
	// Unknown: a write failed or timed out; it may have been applied, at
	// any moment after its call.
	Unknown Outcome = "unknown"
	// Failed: a read failed (UNAVAILABLE when a member fails closed, a
	// timeout, a dead member). It observed nothing.
	Failed Outcome = "failed"
)

// Token is a token as an answer showed it.
type Token struct {
	Disabled       bool   `json:"disabled"`
	Revoked        bool   `json:"revoked"`
	Description    string `json:"description"`
	Label          string `json:"label"`
	CreateRevision uint64 `json:"create_revision"`
	UpdateRevision uint64 `json:"update_revision"`
	LastUsedUnix   int64  `json:"last_used_unix_nano,omitempty"`
}

// Op is one client call.
type Op struct {
	ID     int    `json:"id"`
	Client int    `json:"client"`
	Kind   Kind   `json:"kind"`
	Member string `json:"member"` // the member asked
	// Consistency is set on reads.
	Consistency Consistency `json:"consistency,omitempty"`
	TokenID     string      `json:"token_id,omitempty"`

	// Inputs. Label is the create's unique label (kept for the token's
	// life); Description the unique value a create or update writes;
	// Disabled what an update sets.
	Label       string `json:"label,omitempty"`
	Description string `json:"description,omitempty"`
	Disabled    bool   `json:"disabled,omitempty"`

	// Call and Return are nanoseconds since the history started.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`

	Outcome Outcome `json:"outcome"`
	Code    string  `json:"code,omitempty"` // gRPC code of an error
	Err     string  `json:"error,omitempty"`

	// Answers. Found is false when a get answered NotFound. Token is the
	// token in a get answer or the token after a write.
	Found         bool   `json:"found,omitempty"`
	Token         *Token `json:"token,omitempty"`
	Authenticated bool   `json:"authenticated,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Revision      uint64 `json:"revision,omitempty"`
	AnsweredBy    string `json:"answered_by,omitempty"`
	// Final marks reads of the final listing after faults healed.
	Final bool `json:"final,omitempty"`
	// Resolved marks an unknown create whose token the final listing found
	// (by its label).
	Resolved bool `json:"resolved,omitempty"`
}

// IsWrite reports whether op is a create, update or revoke.
func (op *Op) IsWrite() bool { return op.Kind == Create || op.Kind == Update || op.Kind == Revoke }

func (op *Op) String() string {
	s := fmt.Sprintf("#%d c%d %s@%s", op.ID, op.Client, op.Kind, op.Member)
	if op.Consistency != "" {
		s += "(" + string(op.Consistency) + ")"
	}
	if op.TokenID != "" {
		s += " " + op.TokenID
	}
	switch op.Kind {
	case Create:
		s += fmt.Sprintf(" label=%s desc=%s", op.Label, op.Description)
	case Update:
		s += fmt.Sprintf(" disabled=%v desc=%s", op.Disabled, op.Description)
	}
	s += fmt.Sprintf(" [%s, %s] -> %s", fmtNS(op.Call), fmtNS(op.Return), op.Outcome)
	if op.Code != "" {
		s += " " + op.Code
	}
	switch {
	case op.Kind == Verify && (op.Outcome == OK):
		s += fmt.Sprintf(" authenticated=%v reason=%s", op.Authenticated, op.Reason)
	case op.Kind == Get && op.Outcome == OK && !op.Found:
		s += " not found"
	}
	if op.Token != nil {
		s += fmt.Sprintf(" token{disabled=%v revoked=%v desc=%s update_rev=%d}", op.Token.Disabled, op.Token.Revoked, op.Token.Description, op.Token.UpdateRevision)
	}
	if op.Revision != 0 {
		s += fmt.Sprintf(" rev=%d by %s", op.Revision, op.AnsweredBy)
	}
	if op.Final {
		s += " (final listing)"
	}
	return s
}

func fmtNS(ns int64) string {
	return fmt.Sprintf("%.3fs", float64(ns)/1e9)
}

// Recorder collects operations from concurrent clients.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []*Op
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Start is the moment the history's times count from.
func (r *Recorder) Start() time.Time { return r.start }

// Now is the current time in history nanoseconds (monotonic clock).
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// At converts a wall-clock moment to history nanoseconds.
func (r *Recorder) At(t time.Time) int64 { return int64(t.Sub(r.start)) }

// Add records a finished operation and assigns its id.
func (r *Recorder) Add(op *Op) {
	r.mu.Lock()
	op.ID = len(r.ops)
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns the operations recorded so far, in the order they finished.
func (r *Recorder) Ops() []*Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Op(nil), r.ops...)
}

// Save writes ops as JSON, sorted by call time.
func Save(path string, ops []*Op) error {
	sorted := append([]*Op(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	b, err := json.MarshalIndent(sorted, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Load reads a history written by Save.
func Load(path string) ([]*Op, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ops []*Op
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}
