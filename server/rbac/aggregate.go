package rbac

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
)

// aggregate recomputes the rules of every aggregated ClusterRole in objs,
// replacing those whose rules change. It does in one step what Kubernetes'
// clusterrole-aggregation controller converges to: an aggregated role's
// rules are the rules of the ClusterRoles its selectors match (itself
// excluded), selector by selector, roles in name order, each distinct rule
// once (semantic equality); its own written rules are replaced.
//
// Aggregated roles may select aggregated roles (admin selects edit, which
// selects view), so the rules are computed to a fixed point, starting from
// no rules for every aggregated role. The controller reaches the same
// rules when the selection has no cycle; with a cycle it depends on the
// order it happened to sync in, while this gives the least fixed point, the
// same on every member. Only objs (the entry's result) is read, so the
// outcome is a function of the stored objects alone.
func aggregate(objs map[Key]*Object) error {
	var all, aggregated []*Object
	for _, o := range objs {
		if o.Key.Kind == KindClusterRole {
			all = append(all, o)
			if o.Aggregation != nil {
				aggregated = append(aggregated, o)
			}
		}
	}
	if len(aggregated) == 0 {
		return nil
	}
	byName := func(a, b *Object) int {
		switch {
		case a.Key.Name < b.Key.Name:
			return -1
		case a.Key.Name > b.Key.Name:
			return 1
		}
		return 0
	}
	slices.SortFunc(all, byName)
	slices.SortFunc(aggregated, byName)

	rules := make(map[string][]rbacv1.PolicyRule, len(all))
	for _, o := range all {
		if o.Aggregation == nil {
			rules[o.Key.Name] = o.Rules
		}
	}
	// Each round can only add rules (from no rules upwards), so the sets
	// settle within len(aggregated)+1 rounds; the bound also stops an
	// order-only oscillation a cycle could cause.
	for round := 0; round <= len(aggregated)+1; round++ {
		changed := false
		for _, a := range aggregated {
			var next []rbacv1.PolicyRule
			for _, sel := range a.selectors {
				if sel == nil {
					continue
				}
				for _, c := range all {
					if c.Key.Name == a.Key.Name || !sel.Matches(labels.Set(c.Labels)) {
						continue
					}
					for _, r := range rules[c.Key.Name] {
						if !containsRule(next, r) {
							next = append(next, r)
						}
					}
				}
			}
			if !equality.Semantic.DeepEqual(next, rules[a.Key.Name]) {
				rules[a.Key.Name] = next
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	for _, a := range aggregated {
		r := rules[a.Key.Name]
		if equality.Semantic.DeepEqual(r, a.Rules) {
			continue
		}
		n, err := a.withRules(r)
		if err != nil {
			return err
		}
		objs[a.Key] = n
	}
	return nil
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, x := range rules {
		if equality.Semantic.DeepEqual(x, r) {
			return true
		}
	}
	return false
}
