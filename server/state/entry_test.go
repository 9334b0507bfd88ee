package state

import (
	"slices"
	"testing"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// The compact entry answers with the whole user (name, uid: the stored one
// or TokenUID, groups,
// extra), tokens with the same groups share one list, before and after a
// restore, and a caller changing its answer cannot change the next one.
func TestEntryKeepsWholeUserAndSharesGroups(t *testing.T) {
	f := newFixture(t)
	a, b := f.create("alice", 0), f.create("bob", 0)
	id, _ := token.NewID(time.Now())
	secret, _ := token.NewSecret()
	salt, _ := token.NewSalt()
	h := token.Hash(salt, secret)
	f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{
		Id: id, Salt: salt, SecretHash: h[:], CreatedUnixNano: 1,
		User: &raftstorev1.User{Username: "carol", Uid: "u-3", Groups: []string{"g", "ops"},
			Extra: map[string]*raftstorev1.ExtraValues{"team": {Values: []string{"infra"}}}},
	}}}})
	c := token.Bearer(id, secret)

	check := func(when string) {
		t.Helper()
		now := time.Unix(100, 0)
		da, db, dc := f.s.Authenticate(a.bearer, now), f.s.Authenticate(b.bearer, now), f.s.Authenticate(c, now)
		if !da.Authenticated || !db.Authenticated || !dc.Authenticated {
			t.Fatalf("%s: authenticated %v %v %v", when, da.Authenticated, db.Authenticated, dc.Authenticated)
		}
		if da.User.GetUsername() != "alice" || !slices.Equal(da.User.GetGroups(), []string{"g"}) || da.User.GetUid() != TokenUID(a.id) {
			t.Fatalf("%s: alice answered as %v", when, da.User)
		}
		u := dc.User
		if u.GetUsername() != "carol" || u.GetUid() != "u-3" || !slices.Equal(u.GetGroups(), []string{"g", "ops"}) ||
			!slices.Equal(u.GetExtra()["team"].GetValues(), []string{"infra"}) {
			t.Fatalf("%s: carol answered as %v", when, u)
		}
		f.s.mu.RLock()
		ea, eb := f.s.tokens[a.id], f.s.tokens[b.id]
		f.s.mu.RUnlock()
		if ea.groups == nil || ea.groups != eb.groups {
			t.Fatalf("%s: alice and bob hold separate group lists", when)
		}
		da.User.Username = "mallory" // answers are the caller's
		if again := f.s.Authenticate(a.bearer, now); again.User.GetUsername() != "alice" {
			t.Fatalf("%s: changing an answer changed the index: %v", when, again.User)
		}
	}
	check("after apply")
	restored := New()
	if err := f.db.View(restored.Restore); err != nil {
		t.Fatal(err)
	}
	restored.Committed(f.index)
	f.s = restored
	check("after restore")
}
