package state

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func (f *fixture) purge(cutoff int64, ids ...string) int {
	f.t.Helper()
	b, err := proto.Marshal(&raftstorev1.Command{Op: &raftstorev1.Command_PurgeTokens{PurgeTokens: &raftstorev1.PurgeTokens{Ids: ids, CutoffUnixNano: cutoff}}})
	if err != nil {
		f.t.Fatal(err)
	}
	var res any
	if err := f.db.Update(func(tx *bolt.Tx) error {
		f.index++
		var err error
		res, err = f.s.Apply(tx, f.index, b)
		return err
	}); err != nil {
		f.t.Fatalf("apply purge: %v", err)
	}
	f.s.Committed(f.index)
	return res.(PurgeOutcome).Purged
}

func revokeAt(id string, at int64) *raftstorev1.Command {
	return &raftstorev1.Command{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: id, RevokedUnixNano: at}}}
}

// Purge deletes exactly the listed tokens revoked or expired at or before
// the cutoff: from state.db, from the index (an unknown token afterwards),
// and for good (a restore from state.db does not bring them back).
func TestPurgeDeletesOnlyTokensPastTheCutoff(t *testing.T) {
	f := newFixture(t)
	const cutoff = 1000
	valid := f.create("valid", 0)
	expiredBefore := f.create("expired-before", cutoff-1)
	expiredAt := f.create("expired-at", cutoff)
	expiresAfter := f.create("expires-after", cutoff+1)
	revokedBefore := f.create("revoked-before", 0)
	revokedAfter := f.create("revoked-after", 0)
	unlisted := f.create("unlisted", cutoff-1)
	cleared := f.create("expiry-cleared", cutoff-1)
	f.apply(revokeAt(revokedBefore.id, cutoff-1))
	f.apply(revokeAt(revokedAfter.id, cutoff+1))
	zero := int64(0)
	f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_UpdateToken{UpdateToken: &raftstorev1.UpdateToken{Id: cleared.id, ExpiresUnixNano: &zero}}})

	want := []string{expiredAt.id, expiredBefore.id, revokedBefore.id, unlisted.id}
	slices.Sort(want)
	purgeableSorted := func(s *State) []string {
		got := s.Purgeable(cutoff, 100, nil)
		slices.Sort(got)
		return got
	}
	if got := purgeableSorted(f.s); !slices.Equal(got, want) {
		t.Fatalf("Purgeable = %v, want %v", got, want)
	}
	if got := f.s.Purgeable(cutoff, 100, func(id string) bool { return id == unlisted.id }); slices.Contains(got, unlisted.id) {
		t.Fatalf("Purgeable kept nothing it was asked to keep: %v", got)
	}
	if got := f.s.Purgeable(cutoff, 2, nil); len(got) != 2 {
		t.Fatalf("Purgeable with limit 2 gave %d ids", len(got))
	}

	n := f.purge(cutoff, valid.id, expiredBefore.id, expiredAt.id, expiresAfter.id, revokedBefore.id, revokedAfter.id, "token-nosuch")
	if n != 3 {
		t.Fatalf("purged %d, want 3 (expired before, expired at, revoked before)", n)
	}
	if again := f.purge(cutoff, expiredBefore.id); again != 0 {
		t.Fatalf("purging a purged token again purged %d", again)
	}
	now := time.Unix(0, cutoff-10) // before every expiry: only purged tokens are unknown
	check := func(s *State, when string) {
		t.Helper()
		for _, c := range []struct {
			tok  created
			gone bool
		}{{valid, false}, {expiredBefore, true}, {expiredAt, true}, {expiresAfter, false}, {revokedBefore, true}, {revokedAfter, false}, {unlisted, false}, {cleared, false}} {
			d := s.Authenticate(c.tok.bearer, now)
			gone := d.Reason == tokenstorev1.DenyReason_DENY_REASON_UNKNOWN
			if gone != c.gone {
				t.Errorf("%s: %s: reason %v, want purged=%v", when, c.tok.id, d.Reason, c.gone)
			}
		}
		if got := s.TokenCount(); got != 5 {
			t.Errorf("%s: %d tokens in the index, want 5", when, got)
		}
		if got := purgeableSorted(s); !slices.Equal(got, []string{unlisted.id}) {
			t.Errorf("%s: Purgeable = %v, want only the unlisted %s", when, got, unlisted.id)
		}
	}
	check(f.s, "after purge")
	if err := f.db.View(func(tx *bolt.Tx) error {
		for _, id := range []string{expiredBefore.id, expiredAt.id, revokedBefore.id} {
			if r, err := Get(tx, id); err != nil || r != nil {
				t.Errorf("state.db still holds %s (%v)", id, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := f.db.View(restored.Restore); err != nil {
		t.Fatal(err)
	}
	check(restored, "after restore")
}

// A purge and a use reported for the purged token in the same batch (the
// lastUsedAt register is proposed independently) leave the token purged.
func TestLastUsedOfAPurgedTokenIsIgnored(t *testing.T) {
	f := newFixture(t)
	tok := f.create("gone", 10)
	if n := f.purge(100, tok.id); n != 1 {
		t.Fatalf("purged %d", n)
	}
	f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: &raftstorev1.RecordLastUsed{
		Uses: []*raftstorev1.LastUsed{{Id: tok.id, UnixNano: 50}},
	}}})
	if _, ok := f.s.LastUsed(tok.id); ok {
		t.Fatal("a use brought a purged token back")
	}
}
