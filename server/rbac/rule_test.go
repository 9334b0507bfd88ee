package rbac

import (
	"math/rand/v2"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// referenceAllows is Kubernetes' RuleAllows written out plainly from its
// definition, to check the compiled form against.
func referenceAllows(a *Attributes, r rbacv1.PolicyRule) bool {
	has := func(list []string, all, v string) bool {
		for _, s := range list {
			if s == all || s == v {
				return true
			}
		}
		return false
	}
	if !has(r.Verbs, "*", a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		for _, u := range r.NonResourceURLs {
			if u == "*" || u == a.Path || strings.HasSuffix(u, "*") && strings.HasPrefix(a.Path, strings.TrimRight(u, "*")) {
				return true
			}
		}
		return false
	}
	combined := a.Resource
	if a.Subresource != "" {
		combined += "/" + a.Subresource
	}
	resOK := false
	for _, rr := range r.Resources {
		if rr == "*" || rr == combined ||
			a.Subresource != "" && len(rr) == len(a.Subresource)+2 && strings.HasPrefix(rr, "*/") && strings.HasSuffix(rr, a.Subresource) {
			resOK = true
		}
	}
	nameOK := len(r.ResourceNames) == 0
	for _, n := range r.ResourceNames {
		nameOK = nameOK || n == a.Name
	}
	return has(r.APIGroups, "*", a.APIGroup) && resOK && nameOK
}

// TestCompiledMatchesReference: on random rules and requests over small
// alphabets (wildcards, subresources, odd resources with '/', names,
// URL patterns), the compiled role answers as the reference does.
func TestCompiledMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(from ...string) []string {
		n := rng.IntN(3)
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, from[rng.IntN(len(from))])
		}
		return out
	}
	verbs := []string{"get", "list", "*", "create"}
	groups := []string{"", "apps", "*"}
	resources := []string{"pods", "pods/log", "*", "*/log", "*/scale", "deployments/scale", "pods/", "a/b/c", "a", "log"}
	names := []string{"x", "y", ""}
	urls := []string{"/healthz", "/healthz/*", "*", "/api**", "/", "/api"}
	for i := 0; i < 20000; i++ {
		rules := make([]rbacv1.PolicyRule, 1+rng.IntN(3))
		for j := range rules {
			rules[j] = rbacv1.PolicyRule{Verbs: pick(verbs...), APIGroups: pick(groups...), Resources: pick(resources...),
				ResourceNames: pick(names...), NonResourceURLs: pick(urls...)}
		}
		a := &Attributes{Verb: verbs[rng.IntN(len(verbs))]}
		if rng.IntN(4) == 0 {
			a.Path = []string{"/healthz", "/healthz/x", "/apis", "/api", "/", "/other"}[rng.IntN(6)]
		} else {
			a.ResourceRequest = true
			a.APIGroup = groups[rng.IntN(len(groups))]
			a.Resource = []string{"pods", "deployments", "a", "a/b", "*", ""}[rng.IntN(6)]
			a.Subresource = []string{"", "log", "scale", "b/c", "c"}[rng.IntN(5)]
			a.Name = names[rng.IntN(len(names))]
		}
		perms := permissions{}
		c := compileRole(rules, perms)
		r := perms.request(a)
		want := false
		for _, rule := range rules {
			want = want || referenceAllows(a, rule)
		}
		if got := c.allows(&r); got != want {
			t.Fatalf("rules %+v, request %+v: compiled %v, reference %v", rules, *a, got, want)
		}
	}
}
