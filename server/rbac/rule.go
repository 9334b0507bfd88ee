package rbac

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// compiledRole is a role's rules in the form evaluation reads. Matching
// follows Kubernetes' RBAC authorizer (RuleAllows and the rbac/v1
// evaluation helpers) exactly; compiling only makes it fast:
//
//   - a rule without wildcards, resourceNames or URLs allows exactly the
//     (verb, group, resource, subresource) tuples of its lists' product.
//     Those tuples are numbered snapshot-wide (permissions), and the role
//     keeps the sorted numbers, so such rules cost one binary search per
//     role instead of a scan of every rule;
//   - the other rules are scanned as Kubernetes scans them, with the
//     trailing '*'s of URL patterns trimmed once, not per request.
//
// Nothing is allocated per request.
type compiledRole struct {
	// literal are the permission numbers of the literal rules, sorted.
	literal []uint32
	// rest are the rules not in literal; all are every rule, for the
	// rare request the tuples cannot express (a resource with a '/').
	rest, all []compiledRule
}

type compiledRule struct {
	verbs, groups, resources, names []string
	urls                            []urlPattern
}

// urlPattern is one nonResourceURLs entry.
type urlPattern struct {
	url string
	// prefix is url without its trailing '*'s, for a url ending in '*'.
	prefix   string
	wildcard bool
}

// permission is one (verb, group, resource, subresource) tuple.
type permission struct {
	verb, group, resource, sub string
}

// maxLiteralProduct bounds the tuples one rule may expand to; a larger
// rule is scanned instead.
const maxLiteralProduct = 4096

// permissions numbers the tuples of one snapshot's literal rules.
type permissions map[permission]uint32

func (p permissions) number(t permission) uint32 {
	n, ok := p[t]
	if !ok {
		n = uint32(len(p))
		p[t] = n
	}
	return n
}

func compileRole(rules []rbacv1.PolicyRule, perms permissions) *compiledRole {
	c := &compiledRole{all: make([]compiledRule, len(rules))}
	for i, r := range rules {
		cr := compiledRule{verbs: r.Verbs, groups: r.APIGroups, resources: r.Resources, names: r.ResourceNames}
		for _, u := range r.NonResourceURLs {
			p := urlPattern{url: u}
			if strings.HasSuffix(u, "*") {
				p.wildcard, p.prefix = true, strings.TrimRight(u, "*")
			}
			cr.urls = append(cr.urls, p)
		}
		c.all[i] = cr
		if !isLiteral(r) {
			c.rest = append(c.rest, cr)
			continue
		}
		for _, v := range r.Verbs {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					res, sub, _ := strings.Cut(res, "/")
					c.literal = append(c.literal, perms.number(permission{v, g, res, sub}))
				}
			}
		}
	}
	slices.Sort(c.literal)
	c.literal = slices.Compact(c.literal)
	return c
}

// isLiteral says whether a rule allows exactly the product of its verbs,
// groups and resources: no wildcard, no resourceNames, no URLs, and not
// too large a product.
func isLiteral(r rbacv1.PolicyRule) bool {
	if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 || len(r.Verbs)*len(r.APIGroups)*len(r.Resources) > maxLiteralProduct {
		return false
	}
	if slices.Contains(r.Verbs, rbacv1.VerbAll) || slices.Contains(r.APIGroups, rbacv1.APIGroupAll) {
		return false
	}
	for _, res := range r.Resources {
		// "pods/" is not the tuple (pods, ""): it matches no request
		// without a '/' in its resource, so it is left to the scan.
		if res == rbacv1.ResourceAll || strings.HasPrefix(res, "*/") || strings.HasSuffix(res, "/") {
			return false
		}
	}
	return true
}

// request is a question prepared for one snapshot: its permission number
// looked up once, not once per role.
type request struct {
	*Attributes
	// perm is the request's permission number; known is false when no
	// literal rule of the snapshot has it.
	perm  uint32
	known bool
	// slow is set for a resource request the tuples cannot express.
	slow bool
}

// request prepares a for a snapshot whose literal rules p numbered.
func (p permissions) request(a *Attributes) request {
	r := request{Attributes: a}
	if a.ResourceRequest {
		if strings.Contains(a.Resource, "/") {
			r.slow = true
		} else {
			r.perm, r.known = p[permission{a.Verb, a.APIGroup, a.Resource, a.Subresource}]
		}
	}
	return r
}

// allows says whether any rule of the role allows r.
func (c *compiledRole) allows(r *request) bool {
	if r.slow {
		return anyAllows(c.all, r.Attributes)
	}
	if r.known {
		if _, ok := slices.BinarySearch(c.literal, r.perm); ok {
			return true
		}
	}
	return anyAllows(c.rest, r.Attributes)
}

func anyAllows(rules []compiledRule, a *Attributes) bool {
	for i := range rules {
		if rules[i].allows(a) {
			return true
		}
	}
	return false
}

// allows is Kubernetes' RuleAllows: a resource request needs the verb, the
// API group, the resource (with its subresource) and the name to match; a
// non-resource request needs the verb and the path.
func (r *compiledRule) allows(a *Attributes) bool {
	if !matchesWildcard(r.verbs, rbacv1.VerbAll, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return r.urlMatches(a.Path)
	}
	return matchesWildcard(r.groups, rbacv1.APIGroupAll, a.APIGroup) &&
		r.resourceMatches(a.Resource, a.Subresource) &&
		r.nameMatches(a.Name)
}

// matchesWildcard: the list holds the wildcard or the value.
func matchesWildcard(list []string, all, v string) bool {
	for _, s := range list {
		if s == all || s == v {
			return true
		}
	}
	return false
}

// resourceMatches: a rule resource matches "*", the combined
// "resource/subresource" (or the resource alone without a subresource), or,
// for a subresource request, "*/subresource".
func (r *compiledRule) resourceMatches(resource, sub string) bool {
	for _, rr := range r.resources {
		if rr == rbacv1.ResourceAll || isCombined(rr, resource, sub) {
			return true
		}
		if sub != "" && len(rr) == len(sub)+2 && strings.HasPrefix(rr, "*/") && rr[2:] == sub {
			return true
		}
	}
	return false
}

// isCombined says whether s == resource + "/" + sub (or resource when sub
// is empty) without building the string.
func isCombined(s, resource, sub string) bool {
	if sub == "" {
		return s == resource
	}
	n := len(resource)
	return len(s) == n+1+len(sub) && s[:n] == resource && s[n] == '/' && s[n+1:] == sub
}

// nameMatches: a rule without resourceNames matches every name (and none);
// one with them matches only those, so never a request without a name
// (list, create).
func (r *compiledRule) nameMatches(name string) bool {
	if len(r.names) == 0 {
		return true
	}
	for _, n := range r.names {
		if n == name {
			return true
		}
	}
	return false
}

// urlMatches: "*" matches every path, a pattern ending in '*' every path
// starting with what precedes the '*'s, any other pattern only itself.
func (r *compiledRule) urlMatches(p string) bool {
	for _, u := range r.urls {
		if u.url == rbacv1.NonResourceAll || u.url == p || u.wildcard && strings.HasPrefix(p, u.prefix) {
			return true
		}
	}
	return false
}
