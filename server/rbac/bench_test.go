package rbac

import (
	"fmt"
	"math/rand/v2"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// benchPolicy builds a snapshot of roles ClusterRoles (10 rules each) and
// bindings bindings (a tenth ClusterRoleBindings, the rest RoleBindings in
// 100 namespaces), each binding two of 5,000 users and one of 200 groups,
// and the questions to ask it: a user with three groups, a namespace, a
// resource; about a third are allowed.
func benchPolicy(b *testing.B, roles, bindings int) (*Snapshot, []*Attributes) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	resources := []string{"pods", "services", "configmaps", "secrets", "deployments", "jobs", "nodes", "endpoints", "events", "leases"}
	groups := []string{"", "apps", "batch", "coordination.k8s.io"}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	objs := map[Key]*Object{}
	add := func(o *Object) {
		if err := o.finish(); err != nil {
			b.Fatal(err)
		}
		objs[o.Key] = o
	}
	for i := 0; i < roles; i++ {
		o := &Object{Key: Key{Kind: KindClusterRole, Name: fmt.Sprintf("role-%d", i)}}
		for j := 0; j < 10; j++ {
			o.Rules = append(o.Rules, rbacv1.PolicyRule{
				APIGroups: []string{groups[rng.IntN(len(groups))]},
				Resources: []string{resources[rng.IntN(len(resources))], resources[rng.IntN(len(resources))] + "/status"},
				Verbs:     []string{verbs[rng.IntN(len(verbs))], verbs[rng.IntN(len(verbs))]},
			})
		}
		add(o)
	}
	for i := 0; i < bindings; i++ {
		o := &Object{Key: Key{Kind: KindRoleBinding, Namespace: fmt.Sprintf("ns-%d", rng.IntN(100)), Name: fmt.Sprintf("binding-%d", i)}}
		if i%10 == 0 {
			o.Key = Key{Kind: KindClusterRoleBinding, Name: fmt.Sprintf("binding-%d", i)}
		}
		o.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: KindClusterRole, Name: fmt.Sprintf("role-%d", rng.IntN(roles))}
		o.Subjects = []rbacv1.Subject{
			{Kind: rbacv1.UserKind, Name: fmt.Sprintf("user-%d", rng.IntN(5000))},
			{Kind: rbacv1.UserKind, Name: fmt.Sprintf("user-%d", rng.IntN(5000))},
			{Kind: rbacv1.GroupKind, Name: fmt.Sprintf("group-%d", rng.IntN(200))},
		}
		add(o)
	}
	snap := build(1, objs)
	qs := make([]*Attributes, 4096)
	for i := range qs {
		u := fmt.Sprintf("user-%d", rng.IntN(5000))
		qs[i] = &Attributes{
			User:            u,
			Groups:          ImpliedGroups(u, []string{fmt.Sprintf("group-%d", rng.IntN(200)), fmt.Sprintf("group-%d", rng.IntN(200)), fmt.Sprintf("group-%d", rng.IntN(200))}),
			ResourceRequest: true,
			Namespace:       fmt.Sprintf("ns-%d", rng.IntN(100)),
			Verb:            verbs[rng.IntN(len(verbs))],
			APIGroup:        groups[rng.IntN(len(groups))],
			Resource:        resources[rng.IntN(len(resources))],
			Name:            "x",
		}
	}
	return snap, qs
}

// BenchmarkAuthorize is one decision against 10,000 bindings and 1,000
// roles (the budget: 5 µs).
func BenchmarkAuthorize(b *testing.B) {
	snap, qs := benchPolicy(b, 1000, 10000)
	allowed := 0
	for _, q := range qs {
		if snap.Authorize(q).Allowed {
			allowed++
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		snap.Authorize(qs[i%len(qs)])
	}
	b.ReportMetric(float64(allowed)/float64(len(qs)), "allowed/op")
}

// BenchmarkAuthorizeParallel is BenchmarkAuthorize from every CPU at once.
func BenchmarkAuthorizeParallel(b *testing.B) {
	snap, qs := benchPolicy(b, 1000, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(qs))
		for pb.Next() {
			snap.Authorize(qs[i%len(qs)])
			i++
		}
	})
}

// BenchmarkBuild is the cost of publishing a change: rebuilding the
// snapshot's indexes over 11,000 objects.
func BenchmarkBuild(b *testing.B) {
	snap, _ := benchPolicy(b, 1000, 10000)
	b.ReportAllocs()
	for b.Loop() {
		build(2, copyObjects(snap.objects))
	}
}
