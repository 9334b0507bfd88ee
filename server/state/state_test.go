package state

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// fixture is a State over a real bbolt file, applying commands the way
// raftstore does: one transaction per batch, increasing indexes, then
// Committed.
type fixture struct {
	t     *testing.T
	db    *bolt.DB
	s     *State
	index uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, db: db, s: New()}
	if err := db.Update(f.s.Init); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) apply(cmd *raftstorev1.Command) Outcome {
	f.t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		f.t.Fatal(err)
	}
	var res any
	err = f.db.Update(func(tx *bolt.Tx) error {
		f.index++
		var err error
		res, err = f.s.Apply(tx, f.index, b)
		return err
	})
	if err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	f.s.Committed(f.index) // as raftstore does once the transaction committed
	out, _ := res.(Outcome)
	return out
}

type created struct {
	id, bearer string
}

func (f *fixture) create(user string, expires int64) created {
	f.t.Helper()
	id, _ := token.NewID(time.Now())
	secret, _ := token.NewSecret()
	salt, _ := token.NewSalt()
	h := token.Hash(salt, secret)
	out := f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{
		Id: id, Salt: salt, SecretHash: h[:], User: &raftstorev1.User{Username: user, Groups: []string{"g"}},
		CreatedUnixNano: 1, ExpiresUnixNano: expires,
	}}}})
	if out.Err != nil {
		f.f("create: %v", out.Err)
	}
	if out.Record.GetCreateRevision() != f.index || out.Record.GetUpdateRevision() != f.index {
		f.f("create revisions %d/%d, applied at %d", out.Record.GetCreateRevision(), out.Record.GetUpdateRevision(), f.index)
	}
	return created{id, token.Bearer(id, secret)}
}

func (f *fixture) f(format string, args ...any) { f.t.Helper(); f.t.Fatalf(format, args...) }

func update(id string, disabled *bool) *raftstorev1.Command {
	return &raftstorev1.Command{Op: &raftstorev1.Command_UpdateToken{UpdateToken: &raftstorev1.UpdateToken{Id: id, Disabled: disabled}}}
}

func revoke(id string) *raftstorev1.Command {
	return &raftstorev1.Command{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: id, RevokedUnixNano: 5}}}
}

func TestAuthenticateReasons(t *testing.T) {
	f := newFixture(t)
	now := time.Unix(1000, 0)
	ok := f.create("alice", 0)
	exp := f.create("bob", now.UnixNano()) // expires exactly now: refused
	dis := f.create("carol", 0)
	rev := f.create("dave", 0)
	yes := true
	f.apply(update(dis.id, &yes))
	f.apply(revoke(rev.id))
	wrongSecret := ok.id + ":" + "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"

	for _, c := range []struct {
		name, bearer string
		want         tokenstorev1.DenyReason
	}{
		{"valid", ok.bearer, tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED},
		{"malformed", "not a token", tokenstorev1.DenyReason_DENY_REASON_MALFORMED},
		{"unknown id", "token-nosuch:abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst", tokenstorev1.DenyReason_DENY_REASON_UNKNOWN},
		{"wrong secret", wrongSecret, tokenstorev1.DenyReason_DENY_REASON_UNKNOWN},
		{"expired", exp.bearer, tokenstorev1.DenyReason_DENY_REASON_EXPIRED},
		{"disabled", dis.bearer, tokenstorev1.DenyReason_DENY_REASON_DISABLED},
		{"revoked", rev.bearer, tokenstorev1.DenyReason_DENY_REASON_REVOKED},
	} {
		d := f.s.Authenticate(c.bearer, now)
		if d.Reason != c.want || d.Authenticated != (c.want == tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED) {
			t.Errorf("%s: got authenticated=%v reason=%v, want %v", c.name, d.Authenticated, d.Reason, c.want)
		}
	}
	if d := f.s.Authenticate(ok.bearer, now); d.User.GetUsername() != "alice" || len(d.User.GetGroups()) != 1 {
		t.Errorf("valid token user = %v", d.User)
	}
	// The expiry is exclusive of the instant before.
	if d := f.s.Authenticate(exp.bearer, now.Add(-time.Nanosecond)); !d.Authenticated {
		t.Errorf("token refused before its expiry: %v", d.Reason)
	}
	// Re-enabling works; revoking is final.
	no := false
	if out := f.apply(update(dis.id, &no)); out.Err != nil {
		t.Fatal(out.Err)
	}
	if d := f.s.Authenticate(dis.bearer, now); !d.Authenticated {
		t.Errorf("re-enabled token refused: %v", d.Reason)
	}
	if out := f.apply(update(rev.id, &no)); !errors.Is(out.Err, ErrRevoked) {
		t.Errorf("enabling a revoked token: %v, want ErrRevoked", out.Err)
	}
}

func TestRefusalsAreOutcomesNotFailures(t *testing.T) {
	f := newFixture(t)
	c := f.create("alice", 0)
	if out := f.apply(update("token-missing", nil)); !errors.Is(out.Err, ErrNotFound) {
		t.Errorf("update of unknown id: %v", out.Err)
	}
	if out := f.apply(revoke("token-missing")); !errors.Is(out.Err, ErrNotFound) {
		t.Errorf("revoke of unknown id: %v", out.Err)
	}
	rec := f.apply(revoke(c.id)).Record
	again := f.apply(revoke(c.id))
	if again.Err != nil || again.Record.GetUpdateRevision() != rec.GetUpdateRevision() {
		t.Errorf("second revoke should be a no-op: %v, revision %d vs %d", again.Err, again.Record.GetUpdateRevision(), rec.GetUpdateRevision())
	}
	dup := &raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{Id: c.id, SecretHash: []byte{1}}}}}
	if out := f.apply(dup); !errors.Is(out.Err, ErrExists) {
		t.Errorf("duplicate create: %v", out.Err)
	}
}

func TestUnknownCommandStopsRatherThanDiverge(t *testing.T) {
	f := newFixture(t)
	err := f.db.Update(func(tx *bolt.Tx) error {
		_, err := f.s.Apply(tx, 1, []byte{0xff, 0x01}) // field 31 varint: no known op
		return err
	})
	if err == nil {
		t.Fatal("a command with no known operation was applied")
	}
}

func TestRestoreRebuildsIndex(t *testing.T) {
	f := newFixture(t)
	a := f.create("alice", 0)
	b := f.create("bob", 0)
	yes := true
	f.apply(update(b.id, &yes))
	s2 := New()
	if err := f.db.View(s2.Restore); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if d := s2.Authenticate(a.bearer, now); !d.Authenticated {
		t.Errorf("restored state refuses alice: %v", d.Reason)
	}
	if d := s2.Authenticate(b.bearer, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_DISABLED {
		t.Errorf("restored state: bob reason %v, want disabled", d.Reason)
	}
}

func TestListPages(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 25; i++ {
		f.create("u", 0)
	}
	var seen []string
	after := ""
	for {
		var recs []*raftstorev1.TokenRecord
		var more bool
		if err := f.db.View(func(tx *bolt.Tx) error {
			var err error
			recs, more, err = List(tx, after, 10)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			seen = append(seen, r.GetId())
		}
		if !more {
			break
		}
		after = recs[len(recs)-1].GetId()
	}
	if len(seen) != 25 {
		t.Fatalf("paged through %d tokens, want 25", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("page order broken at %d: %s after %s", i, seen[i], seen[i-1])
		}
	}
}

// TestLastUsedIsCommutativeAndIdempotent applies the same set of reports in
// random orders, with random duplicates and batchings, and checks every
// run ends in the same state: the per-token maximum.
func TestLastUsedIsCommutativeAndIdempotent(t *testing.T) {
	base := newFixture(t)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, base.create("u", 0).id)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var reports []*raftstorev1.LastUsed
	want := map[string]int64{}
	for i := 0; i < 60; i++ {
		id := ids[rng.IntN(len(ids))]
		ts := rng.Int64N(1_000_000) + 1
		reports = append(reports, &raftstorev1.LastUsed{Id: id, UnixNano: ts})
		if ts > want[id] {
			want[id] = ts
		}
	}
	reports = append(reports, &raftstorev1.LastUsed{Id: "token-gone", UnixNano: 7}) // unknown: ignored

	for run := 0; run < 20; run++ {
		f := newFixture(t)
		// Same tokens in the fresh fixture, by copying the records.
		if err := base.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(tokensBucket).ForEach(func(_, v []byte) error {
				r := &raftstorev1.TokenRecord{}
				if err := proto.Unmarshal(v, r); err != nil {
					return err
				}
				f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: r}}})
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		shuffled := append([]*raftstorev1.LastUsed(nil), reports...)
		// Duplicate a random third of them.
		for i := 0; i < len(reports)/3; i++ {
			shuffled = append(shuffled, reports[rng.IntN(len(reports))])
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for len(shuffled) > 0 {
			n := 1 + rng.IntN(len(shuffled))
			f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: &raftstorev1.RecordLastUsed{Uses: shuffled[:n]}}})
			shuffled = shuffled[n:]
		}
		if err := f.db.View(func(tx *bolt.Tx) error {
			for _, id := range ids {
				r, err := Get(tx, id)
				if err != nil {
					return err
				}
				if r.GetLastUsedUnixNano() != want[id] {
					t.Errorf("run %d: %s lastUsed %d, want max %d", run, id, r.GetLastUsedUnixNano(), want[id])
				}
			}
			if r, _ := Get(tx, "token-gone"); r != nil {
				t.Errorf("run %d: report for an unknown id created a token", run)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChangesPublishAtCommitWithTheirRevision: a change applied but not yet
// committed is invisible, and once published, answers carry its revision,
// so a revision always names the state an answer was read from.
func TestChangesPublishAtCommitWithTheirRevision(t *testing.T) {
	f := newFixture(t)
	c := f.create("alice", 0)
	before := f.s.Authenticate(c.bearer, time.Now())
	if !before.Authenticated || before.Revision != f.index {
		t.Fatalf("after create at %d: %+v", f.index, before)
	}
	yes := true
	b, _ := proto.Marshal(update(c.id, &yes))
	if err := f.db.Update(func(tx *bolt.Tx) error {
		_, err := f.s.Apply(tx, f.index+1, b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d := f.s.Authenticate(c.bearer, time.Now()); !d.Authenticated || d.Revision != f.index {
		t.Fatalf("uncommitted disable visible: %+v", d)
	}
	f.s.Committed(f.index + 1)
	if d := f.s.Authenticate(c.bearer, time.Now()); d.Reason != tokenstorev1.DenyReason_DENY_REASON_DISABLED || d.Revision != f.index+1 {
		t.Fatalf("after commit: %+v", d)
	}
}
