package loadgen

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
)

// TestRBACPolicyModelMatchesAuthorizer checks the expected decisions the
// SubjectAccessReview rounds hold every answer to: for each question, the
// policy's model must agree with server/rbac's authorizer over the same
// objects, stored as a member stores them. Both outcomes must occur, or the
// check of the rounds would not tell a wrong answer from a right one.
func TestRBACPolicyModelMatchesAuthorizer(t *testing.T) {
	p := NewRBACPolicy(1000, 10000, 2000, 1)
	batches, err := p.Documents(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*rbac.Object
	for _, d := range batches[0] {
		o, err := rbac.Parse(d)
		if err != nil {
			t.Fatalf("parse %s: %v", d, err)
		}
		objs = append(objs, o...)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := rbac.NewStore()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := store.Init(tx); err != nil {
			return err
		}
		res, err := store.Apply(tx, 1, &raftstorev1.ApplyRBAC{Objects: rbac.Stored(objs)})
		if err == nil {
			err = res.Err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	store.Committed(1)
	snap := store.Snapshot()
	if snap.Len() != 11000 {
		t.Fatalf("snapshot holds %d objects, want 11000", snap.Len())
	}
	allowed := 0
	for i, q := range p.Questions {
		d := snap.Authorize(&rbac.Attributes{User: q.User, Groups: rbac.ImpliedGroups(q.User, q.Groups), ResourceRequest: true,
			Namespace: q.Namespace, Verb: q.Verb, APIGroup: q.APIGroup, Resource: q.Resource, Subresource: q.Subresource, Name: q.Name})
		if d.Allowed != q.Allowed {
			t.Errorf("question %d %+v: authorizer allowed=%v (%s), model %v", i, q, d.Allowed, d.Reason(), q.Allowed)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(p.Questions) {
		t.Fatalf("%d of %d questions allowed: want both outcomes", allowed, len(p.Questions))
	}
	t.Logf("%d of %d questions allowed (%.0f%%)", allowed, len(p.Questions), 100*p.AllowedShare())
}
