package rbac

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac/rbactest"
)

// testStore is a Store on a real bbolt database, applied to as raftstore
// would: one write transaction per entry, indexes increasing.
type testStore struct {
	t     *testing.T
	db    *bolt.DB
	store *Store
	index uint64
}

func newTestStore(t *testing.T) *testStore {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ts := &testStore{t: t, db: db, store: NewStore(), index: 10}
	if err := db.Update(ts.store.Init); err != nil {
		t.Fatal(err)
	}
	return ts
}

// parseAll parses a multi-document stream.
func parseAll(t *testing.T, data string) []*Object {
	t.Helper()
	docs, err := SplitDocuments([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []*Object
	for i, d := range docs {
		objs, err := Parse(d)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		out = append(out, objs...)
	}
	return out
}

func (ts *testStore) apply(c *raftstorev1.ApplyRBAC) Result {
	ts.t.Helper()
	ts.index++
	var res Result
	err := ts.db.Update(func(tx *bolt.Tx) error {
		var err error
		res, err = ts.store.Apply(tx, ts.index, c)
		return err
	})
	if err != nil {
		ts.t.Fatalf("apply: %v", err)
	}
	ts.store.Committed(ts.index)
	return res
}

func (ts *testStore) applyYAML(data string, prune bool) Result {
	ts.t.Helper()
	return ts.apply(&raftstorev1.ApplyRBAC{Objects: Stored(parseAll(ts.t, data)), Prune: prune})
}

func (ts *testStore) delete(c *raftstorev1.DeleteRBAC) Result {
	ts.t.Helper()
	ts.index++
	var res Result
	err := ts.db.Update(func(tx *bolt.Tx) error {
		var err error
		res, err = ts.store.Delete(tx, ts.index, c)
		return err
	})
	if err != nil {
		ts.t.Fatalf("delete: %v", err)
	}
	ts.store.Committed(ts.index)
	return res
}

// caseAttributes is the question of a table case, with the implied groups
// added as the server adds them.
func caseAttributes(c rbactest.Case) *Attributes {
	a := &Attributes{User: c.User, Groups: ImpliedGroups(c.User, c.Groups), Verb: c.Verb}
	if c.Path != "" {
		a.Path = c.Path
		return a
	}
	a.ResourceRequest = true
	a.Namespace, a.APIGroup, a.Resource, a.Subresource, a.Name = c.Namespace, c.Group, c.Resource, c.Subresource, c.ResourceName
	return a
}

// checkCases asks every table case of snap.
func checkCases(t *testing.T, snap *Snapshot) {
	t.Helper()
	for _, c := range rbactest.Cases {
		d := snap.Authorize(caseAttributes(c))
		var binding, role string
		if d.Allowed {
			binding, role = d.Binding.Key.String(), d.RoleKey.String()
		}
		if d.Allowed != c.Allowed || binding != c.Binding || role != c.Role || d.Reason() != c.Reason {
			t.Errorf("%s: allowed=%v binding=%q role=%q reason=%q; want %v %q %q %q",
				c.Name, d.Allowed, binding, role, d.Reason(), c.Allowed, c.Binding, c.Role, c.Reason)
		}
		if d.Revision != snap.Revision() {
			t.Errorf("%s: revision %d, snapshot is at %d", c.Name, d.Revision, snap.Revision())
		}
	}
}

// TestKubernetesDecisions asks the table of cases, each with the decision
// and reason Kubernetes' RBAC authorizer gives, after a restart too.
func TestKubernetesDecisions(t *testing.T) {
	ts := newTestStore(t)
	res := ts.applyYAML(rbactest.Policy, false)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	checkCases(t, ts.store.Snapshot())

	restarted := NewStore()
	if err := ts.db.View(restarted.Restore); err != nil {
		t.Fatal(err)
	}
	if restarted.Snapshot().Len() != 0 {
		t.Fatal("Restore published before Committed")
	}
	restarted.Committed(ts.index)
	if v := restarted.View(); v.Applied != ts.index {
		t.Fatalf("view at %d, want %d", v.Applied, ts.index)
	}
	if got, want := restarted.Snapshot().Revision(), ts.store.Snapshot().Revision(); got != want {
		t.Fatalf("restored revision %d, want %d", got, want)
	}
	checkCases(t, restarted.Snapshot())
}

func TestImpliedGroups(t *testing.T) {
	for _, c := range []struct {
		user       string
		groups     []string
		wantGroups []string
	}{
		{"alice", nil, []string{"system:authenticated"}},
		{"alice", []string{"dev"}, []string{"dev", "system:authenticated"}},
		{"alice", []string{"system:authenticated", "dev"}, []string{"system:authenticated", "dev"}},
		{"alice", []string{"system:unauthenticated"}, []string{"system:unauthenticated"}},
		{"system:anonymous", nil, []string{"system:unauthenticated"}},
		{"system:anonymous", []string{"system:unauthenticated"}, []string{"system:unauthenticated"}},
		{"system:serviceaccount:ci:bot", nil, []string{"system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"}},
		{"system:serviceaccount:ci:bot", []string{"x"}, []string{"x", "system:authenticated"}},
		{"system:serviceaccount:ci", nil, []string{"system:authenticated"}},
		{"", []string{"admins"}, []string{"admins"}},
	} {
		in := slices.Clone(c.groups)
		got := ImpliedGroups(c.user, in)
		if !slices.Equal(got, c.wantGroups) {
			t.Errorf("ImpliedGroups(%q, %q) = %q, want %q", c.user, c.groups, got, c.wantGroups)
		}
		if !slices.Equal(in, c.groups) {
			t.Errorf("ImpliedGroups(%q, %q) modified its argument", c.user, c.groups)
		}
	}
}

func actions(res Result) []string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.Key.String()+"="+[]string{"", "created", "configured", "unchanged", "pruned", "deleted"}[c.Action])
	}
	return out
}

const (
	roleA = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: a}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`
	roleAChanged = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: a}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
`
	bindingA = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: a}
subjects: [{kind: User, name: alice}]
roleRef: {kind: ClusterRole, name: a}
`
	roleB = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: b, namespace: dev}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get]}]
`
)

// TestApplyPruneDelete: what each write reports, that only a change bumps
// the revision, prune replaces the set, refusals change nothing.
func TestApplyPruneDelete(t *testing.T) {
	ts := newTestStore(t)
	res := ts.applyYAML(roleA+"---"+bindingA, false)
	if got := actions(res); !slices.Equal(got, []string{"ClusterRole/a=created", "ClusterRoleBinding/a=created"}) || res.Revision != ts.index {
		t.Fatalf("first apply: %v at %d (index %d)", got, res.Revision, ts.index)
	}
	first := res.Revision
	oldSnap := ts.store.Snapshot()

	res = ts.applyYAML(roleA, false)
	if got := actions(res); !slices.Equal(got, []string{"ClusterRole/a=unchanged"}) || res.Revision != first {
		t.Fatalf("unchanged apply: %v at %d, want revision %d kept", got, res.Revision, first)
	}
	if ts.store.Snapshot() != oldSnap {
		t.Error("an unchanged apply published a new snapshot")
	}

	res = ts.applyYAML(roleAChanged+"---"+roleB, false)
	if got := actions(res); !slices.Equal(got, []string{"ClusterRole/a=configured", "Role/dev/b=created"}) || res.Revision != ts.index {
		t.Fatalf("changing apply: %v at %d", got, res.Revision)
	}
	list := &Attributes{User: "alice", ResourceRequest: true, Verb: "list", Resource: "pods"}
	if !ts.store.Snapshot().Authorize(list).Allowed {
		t.Error("the changed role does not allow list")
	}
	// A reader holding the old snapshot keeps answering from it.
	if d := oldSnap.Authorize(list); d.Allowed || d.Revision != first {
		t.Errorf("old snapshot answered %+v", d)
	}

	res = ts.apply(&raftstorev1.ApplyRBAC{Objects: Stored(parseAll(t, roleA)), ExpectedRevision: first})
	if !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("stale expected revision: %v", res.Err)
	}

	before := ts.store.Snapshot().Revision()
	res = ts.apply(&raftstorev1.ApplyRBAC{Objects: Stored(parseAll(t, bindingA)), Prune: true, ExpectedRevision: before})
	if got := actions(res); !slices.Equal(got, []string{"ClusterRoleBinding/a=unchanged", "ClusterRole/a=pruned", "Role/dev/b=pruned"}) {
		t.Fatalf("prune: %v (%v)", got, res.Err)
	}
	snap := ts.store.Snapshot()
	if snap.Len() != 1 || snap.Revision() != ts.index {
		t.Fatalf("after prune: %d objects at %d", snap.Len(), snap.Revision())
	}
	if d := snap.Authorize(list); d.Allowed || d.Reason() != `RBAC: clusterrole.rbac.authorization.k8s.io "a" not found` {
		t.Errorf("binding to a pruned role: %+v %q", d, d.Reason())
	}

	res = ts.delete(&raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: "ClusterRole", Name: "nope"}}})
	if !errors.Is(res.Err, ErrNotFound) || ts.store.Snapshot() != snap {
		t.Fatalf("delete of a missing object: %v", res.Err)
	}
	res = ts.delete(&raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: "ClusterRole", Name: "nope"}, {Kind: "ClusterRoleBinding", Name: "a"}}, IgnoreMissing: true})
	if got := actions(res); !slices.Equal(got, []string{"ClusterRoleBinding/a=deleted"}) || ts.store.Snapshot().Len() != 0 {
		t.Fatalf("delete: %v, %d left", got, ts.store.Snapshot().Len())
	}

	// A duplicate or undecodable object refuses the whole entry.
	objs := Stored(parseAll(t, roleA))
	res = ts.apply(&raftstorev1.ApplyRBAC{Objects: append(objs, objs[0])})
	if !errors.Is(res.Err, ErrInvalid) || ts.store.Snapshot().Len() != 0 {
		t.Errorf("duplicate: %v", res.Err)
	}
	res = ts.apply(&raftstorev1.ApplyRBAC{Objects: append(objs, &raftstorev1.RBACObject{Encoding: 1, Data: []byte(`{"apiVersion":"v1","kind":"Pod"}`)})})
	if !errors.Is(res.Err, ErrInvalid) || ts.store.Snapshot().Len() != 0 {
		t.Errorf("undecodable: %v", res.Err)
	}
}

// TestAggregationRecomputedOnApply: Kubernetes' default roles aggregate
// (admin ⊇ edit ⊇ view); changing, adding or deleting a source role
// changes the aggregated role in the same entry.
func TestAggregationRecomputedOnApply(t *testing.T) {
	ts := newTestStore(t)
	boot, err := Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	if res := ts.apply(&raftstorev1.ApplyRBAC{Objects: Stored(boot)}); res.Err != nil {
		t.Fatal(res.Err)
	}
	ts.applyYAML(`
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-admin, namespace: dev}
subjects: [{kind: User, name: alice}]
roleRef: {kind: ClusterRole, name: admin}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-view, namespace: dev}
subjects: [{kind: User, name: bob}]
roleRef: {kind: ClusterRole, name: view}
`, false)
	ask := func(user, verb, group, resource string) bool {
		return ts.store.Snapshot().Authorize(&Attributes{User: user, Groups: ImpliedGroups(user, nil), ResourceRequest: true,
			Namespace: "dev", Verb: verb, APIGroup: group, Resource: resource}).Allowed
	}
	for _, c := range []struct {
		user, verb, group, resource string
		want                        bool
	}{
		{"alice", "get", "", "pods", true},                                     // view, through edit
		{"alice", "create", "apps", "deployments", true},                       // edit
		{"alice", "create", "rbac.authorization.k8s.io", "rolebindings", true}, // admin's own
		{"bob", "get", "", "pods", true},
		{"bob", "get", "", "secrets", false}, // view does not read secrets
		{"bob", "create", "apps", "deployments", false},
		{"bob", "get", "example.com", "widgets", false},
	} {
		if got := ask(c.user, c.verb, c.group, c.resource); got != c.want {
			t.Errorf("%s %s %s.%s: %v, want %v", c.user, c.verb, c.resource, c.group, got, c.want)
		}
	}
	view := ts.store.Snapshot().Get(Key{Kind: KindClusterRole, Name: "view"})
	if view == nil || len(view.Rules) == 0 || !strings.Contains(string(view.JSON()), `"endpointslices"`) {
		t.Fatalf("view is stored without its aggregated rules: %s", view.JSON())
	}

	// A new role labelled for view reaches view, edit and admin.
	ts.applyYAML(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules: [{apiGroups: [example.com], resources: [widgets], verbs: [get]}]
`, false)
	if !ask("bob", "get", "example.com", "widgets") || !ask("alice", "get", "example.com", "widgets") {
		t.Error("a new aggregated-to-view role did not reach view and admin")
	}
	ts.delete(&raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: KindClusterRole, Name: "widgets-view"}}})
	if ask("bob", "get", "example.com", "widgets") || ask("alice", "get", "example.com", "widgets") {
		t.Error("deleting the role did not remove its rules from view and admin")
	}
	if ts.store.Snapshot().Get(Key{Kind: KindClusterRole, Name: "view"}).JSON() == nil {
		t.Fatal("view is gone")
	}
}

// TestAggregationCycle: roles selecting each other settle on the rules of
// the plain roles they reach, the same however they were applied.
func TestAggregationCycle(t *testing.T) {
	const cyc = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "x", labels: {agg: "y"}}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {agg: "x"}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "y", labels: {agg: "x"}}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {agg: "y"}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: plain, labels: {agg: "y"}}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`
	ts := newTestStore(t)
	ts.applyYAML(cyc, false)
	for _, name := range []string{"x", "y"} {
		o := ts.store.Snapshot().Get(Key{Kind: KindClusterRole, Name: name})
		if len(o.Rules) != 1 || o.Rules[0].Resources[0] != "pods" {
			t.Errorf("%s rules %v, want plain's", name, o.Rules)
		}
	}
}

func TestParseRefusesWhatKubernetesRefuses(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},"rules":[]}`, "metadata.namespace: Required value"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r","namespace":"x"}}`, "metadata.namespace: Forbidden"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"a/b"}}`, "may not contain '/'"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["pods"]}]}`, "rules[0].verbs: Required value"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"resources":["pods"],"verbs":["get"]}]}`, "rules[0].apiGroups: Required value"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r","namespace":"n"},"rules":[{"nonResourceURLs":["/x"],"verbs":["get"]}]}`, "namespaced rules cannot apply to non-resource URLs"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"nonResourceURLs":["/x"],"resources":["pods"],"verbs":["get"]}]}`, "both regular resources and non-resource URLs"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"aggregationRule":{}}`, "at least one clusterRoleSelector"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"b"},"roleRef":{"kind":"Role","name":"r"},"subjects":[]}`, `roleRef.kind: Unsupported value: "Role"`},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"b"},"roleRef":{"kind":"ClusterRole","name":"r"},"subjects":[{"kind":"ServiceAccount","name":"sa"}]}`, "subjects[0].namespace: Required value"},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"n"},"roleRef":{"kind":"ClusterRole","name":"r"},"subjects":[{"kind":"Robot","name":"x"}]}`, `subjects[0].kind: Unsupported value: "Robot"`},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"n"},"roleRef":{"kind":"ClusterRole","name":"r"},"subjects":[{"kind":"User","name":"x","apiGroup":"v1"}]}`, `subjects[0].apiGroup: Unsupported value: "v1"`},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"n"},"roleRef":{"kind":"ClusterRole","name":"r"},"rules":[]}`, `unknown field "rules"`},
		{`{"apiVersion":"rbac.authorization.k8s.io/v1beta1","kind":"Role","metadata":{"name":"r","namespace":"n"}}`, `apiVersion "rbac.authorization.k8s.io/v1beta1"`},
		{`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}`, `items[0]: apiVersion "v1"`},
		{"kind: ClusterRole\nkind: Role\n", `key "kind" already set`},
	} {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", c.doc, err, c.want)
		}
	}
}

// TestParseDefaultsAndCanonicalForm: defaults as the Kubernetes API server
// sets them, the server's own metadata dropped, YAML and JSON alike.
func TestParseDefaultsAndCanonicalForm(t *testing.T) {
	objs := parseAll(t, `
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata:
    name: b
    namespace: dev
    uid: 0d5c6a3e-0000-0000-0000-000000000000
    resourceVersion: "42"
    creationTimestamp: "2024-01-01T00:00:00Z"
    labels: {team: a}
  subjects: [{kind: User, name: alice}, {kind: ServiceAccount, name: sa}]
  roleRef: {kind: ClusterRole, name: view}
---
{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"c"}}
`)
	if len(objs) != 2 {
		t.Fatalf("%d objects", len(objs))
	}
	want := `{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"b","namespace":"dev","labels":{"team":"a"}},` +
		`"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"},{"kind":"ServiceAccount","name":"sa"}],` +
		`"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}}`
	if got := string(objs[0].JSON()); got != want {
		t.Errorf("canonical form\n got %s\nwant %s", got, want)
	}
	if objs[1].Key != (Key{Kind: KindClusterRole, Name: "c"}) {
		t.Errorf("second object %v", objs[1].Key)
	}
	docs, err := SplitDocuments([]byte(`{"apiVersion":"a"} {"apiVersion":"b"}`))
	if err != nil || len(docs) != 2 {
		t.Errorf("JSON stream: %d documents, %v", len(docs), err)
	}
}

func TestRulesFor(t *testing.T) {
	ts := newTestStore(t)
	ts.applyYAML(rbactest.Policy, false)
	snap := ts.store.Snapshot()
	rules, errs := snap.RulesFor("bob", ImpliedGroups("bob", nil), "dev")
	var got []string
	for _, r := range rules {
		got = append(got, r.Binding.Key.String()+" "+r.RoleKey.String()+" "+strings.Join(r.Rule.Verbs, ","))
	}
	want := []string{
		"ClusterRoleBinding/health ClusterRole/health get",
		"RoleBinding/dev/bob-deployer Role/dev/deployer create,update",
		"RoleBinding/dev/bob-pods ClusterRole/pod-reader get,list,watch",
	}
	if !slices.Equal(got, want) || len(errs) != 0 {
		t.Errorf("rules for bob in dev:\n%s\nwant\n%s\nerrors %v", strings.Join(got, "\n"), strings.Join(want, "\n"), errs)
	}
	if _, errs := snap.RulesFor("erin", nil, "dev"); len(errs) != 2 {
		t.Errorf("erin's resolution errors: %v", errs)
	}
}

// TestBatchedEntries: several RBAC entries applied in one transaction (one
// raft batch) each see the ones before; readers see none of them until
// Committed, then all.
func TestBatchedEntries(t *testing.T) {
	ts := newTestStore(t)
	before := ts.store.View()
	err := ts.db.Update(func(tx *bolt.Tx) error {
		r1, err := ts.store.Apply(tx, 20, &raftstorev1.ApplyRBAC{Objects: Stored(parseAll(t, roleA))})
		if err != nil || r1.Err != nil {
			t.Fatalf("first entry: %v %v", err, r1.Err)
		}
		r2, err := ts.store.Apply(tx, 21, &raftstorev1.ApplyRBAC{Objects: Stored(parseAll(t, bindingA)), ExpectedRevision: 20})
		if err != nil || r2.Err != nil {
			t.Fatalf("second entry: %v %v", err, r2.Err)
		}
		r3, err := ts.store.Delete(tx, 22, &raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: KindClusterRole, Name: "a"}}})
		if err != nil || r3.Err != nil || r3.Revision != 22 {
			t.Fatalf("third entry: %v %+v", err, r3)
		}
		if ts.store.View() != before {
			t.Error("staged entries were published before Committed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.store.Committed(22)
	v := ts.store.View()
	if v.Applied != 22 || v.Revision() != 22 || v.Len() != 1 || v.Get(Key{Kind: KindClusterRoleBinding, Name: "a"}) == nil {
		t.Errorf("after the batch: applied %d, revision %d, %d objects", v.Applied, v.Revision(), v.Len())
	}
	ts.store.Committed(23)
	if w := ts.store.View(); w.Snapshot != v.Snapshot || w.Applied != 23 {
		t.Error("a commit without RBAC changes did not keep the snapshot")
	}
}

// TestReadersSeeWholeSnapshots: readers asking while entries replace the
// whole set see, at every revision, exactly that revision's answer (run
// with -race: publication is one atomic store of an immutable snapshot).
func TestReadersSeeWholeSnapshots(t *testing.T) {
	ts := newTestStore(t)
	setA := roleA + "---" + bindingA // alice may get pods
	setB := roleB + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-b, namespace: dev}
subjects: [{kind: User, name: alice}]
roleRef: {kind: Role, name: b}
` // alice may get secrets in dev, not pods
	allowsPods := map[uint64]bool{}
	var mu sync.Mutex
	apply := func(set string) {
		// Recorded before the entry, which changes the set and so takes
		// the next index as its revision: a reader may see it at once.
		mu.Lock()
		allowsPods[ts.index+1] = set == setA
		mu.Unlock()
		if res := ts.applyYAML(set, true); res.Revision != ts.index {
			t.Fatalf("revision %d, want %d", res.Revision, ts.index)
		}
	}
	apply(setA)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pods := &Attributes{User: "alice", ResourceRequest: true, Namespace: "dev", Verb: "get", Resource: "pods"}
			secrets := &Attributes{User: "alice", ResourceRequest: true, Namespace: "dev", Verb: "get", Resource: "secrets"}
			for {
				select {
				case <-done:
					return
				default:
				}
				v := ts.store.View()
				p, s := v.Authorize(pods), v.Authorize(secrets)
				mu.Lock()
				want, known := allowsPods[v.Revision()]
				mu.Unlock()
				if !known || p.Revision != v.Revision() || p.Allowed != want || s.Allowed == want || v.Applied < v.Revision() {
					t.Errorf("revision %d (applied %d): pods %v, secrets %v, want pods %v", v.Revision(), v.Applied, p.Allowed, s.Allowed, want)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		apply([]string{setB, setA}[i%2])
	}
	close(done)
	wg.Wait()
}
