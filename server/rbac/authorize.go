package rbac

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Attributes are the question: who wants to do what. They are the
// attributes Kubernetes' authorizer reads from a request (a
// SubjectAccessReview spec).
type Attributes struct {
	User   string
	Groups []string

	// ResourceRequest selects the resource attributes (Namespace ...
	// Name); otherwise Path is asked for.
	ResourceRequest bool
	Namespace       string
	Verb            string
	APIGroup        string
	Resource        string
	Subresource     string
	Name            string
	Path            string
}

// Decision is the RBAC authorizer's answer. Not allowed means "no
// opinion": RBAC has no deny rules.
type Decision struct {
	Allowed bool
	// Binding, RoleKey and Subject say what allowed the request: the
	// binding, the role it refers to, and the binding's first subject
	// that applies to the user.
	Binding *Object
	RoleKey Key
	Subject rbacv1.Subject
	// Errors are the role references of the user's bindings that could
	// not be resolved, in visiting order, each message once; set only
	// when not allowed (Kubernetes stops at the first allowing rule).
	Errors []string
	// Revision is the snapshot's revision.
	Revision uint64
}

// Authorize answers a from the snapshot as Kubernetes' RBAC authorizer
// does: the ClusterRoleBindings that apply to the user, then, for a request
// in a namespace, that namespace's RoleBindings; the first rule that allows
// decides. Only the bindings indexed under the user's name and groups are
// read, so the cost is the user's bindings, not every binding. Authorize
// allocates nothing when the request is allowed and is safe for concurrent
// use.
func (s *Snapshot) Authorize(a *Attributes) Decision {
	r := s.perms.request(a)
	u := s.users[a.User]
	var best *binding
	best = firstAllowing(best, u.clusterList(), &r)
	for _, g := range a.Groups {
		best = firstAllowing(best, s.groups[g].clusterList(), &r)
	}
	if best == nil && a.Namespace != "" {
		best = firstAllowing(best, u.nsList(a.Namespace), &r)
		for _, g := range a.Groups {
			best = firstAllowing(best, s.groups[g].nsList(a.Namespace), &r)
		}
	}
	if best == nil {
		d := Decision{Revision: s.revision}
		if s.anyUnresolved(u, a) {
			d.Errors = s.resolutionErrors(a.User, a.Groups, a.Namespace)
		}
		return d
	}
	d := Decision{Allowed: true, Binding: best.obj, RoleKey: best.roleKey, Revision: s.revision}
	if i, ok := appliesTo(a.User, a.Groups, best.obj); ok {
		d.Subject = best.obj.Subjects[i]
	}
	return d
}

// anyUnresolved says whether a binding that applies to a's user refers to
// a role that does not exist; only then is a denial's list of errors
// built, so a plain denial allocates nothing.
func (s *Snapshot) anyUnresolved(u *subjectBindings, a *Attributes) bool {
	unresolved := func(l []*binding) bool {
		for _, b := range l {
			if b.role == nil {
				return true
			}
		}
		return false
	}
	if unresolved(u.clusterList()) || a.Namespace != "" && unresolved(u.nsList(a.Namespace)) {
		return true
	}
	for _, g := range a.Groups {
		sb := s.groups[g]
		if unresolved(sb.clusterList()) || a.Namespace != "" && unresolved(sb.nsList(a.Namespace)) {
			return true
		}
	}
	return false
}

// firstAllowing returns the binding of list that allows r and comes before
// best in visiting order, or best. list is in visiting order, so the
// search stops at best's place.
func firstAllowing(best *binding, list []*binding, r *request) *binding {
	for _, b := range list {
		if best != nil && b.ord >= best.ord {
			return best
		}
		if b.role != nil && b.role.allows(r) {
			return b
		}
	}
	return best
}

func (sb *subjectBindings) clusterList() []*binding {
	if sb == nil {
		return nil
	}
	return sb.cluster
}

func (sb *subjectBindings) nsList(ns string) []*binding {
	if sb == nil {
		return nil
	}
	return sb.byNS[ns]
}

// candidates returns the bindings that apply to the user in namespace
// (ClusterRoleBindings, then that namespace's RoleBindings), each once, in
// visiting order.
func (s *Snapshot) candidates(user string, groups []string, namespace string) []*binding {
	u := s.users[user]
	collect := func(lists ...[]*binding) []*binding {
		var out []*binding
		for _, l := range lists {
			out = append(out, l...)
		}
		slices.SortFunc(out, func(a, b *binding) int { return a.ord - b.ord })
		return slices.Compact(out)
	}
	lists := [][]*binding{u.clusterList()}
	for _, g := range groups {
		lists = append(lists, s.groups[g].clusterList())
	}
	out := collect(lists...)
	if namespace != "" {
		lists = [][]*binding{u.nsList(namespace)}
		for _, g := range groups {
			lists = append(lists, s.groups[g].nsList(namespace))
		}
		out = append(out, collect(lists...)...)
	}
	return out
}

// resolutionErrors are Kubernetes' messages for the user's bindings whose
// role does not exist, each message once.
func (s *Snapshot) resolutionErrors(user string, groups []string, namespace string) []string {
	var out []string
	for _, b := range s.candidates(user, groups, namespace) {
		if b.role != nil {
			continue
		}
		if msg := b.resolutionError(); !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// resolutionError is the error Kubernetes' rule resolver reports for a
// role reference it cannot resolve.
func (b *binding) resolutionError() string {
	switch b.roleKey.Kind {
	case KindRole:
		return fmt.Sprintf("role.rbac.authorization.k8s.io %q not found", b.roleKey.Name)
	case KindClusterRole:
		return fmt.Sprintf("clusterrole.rbac.authorization.k8s.io %q not found", b.roleKey.Name)
	}
	return fmt.Sprintf("unsupported role reference kind: %q", b.roleKey.Kind)
}

// appliesTo returns the index of the first of o's subjects that applies
// to the user, as Kubernetes' rule resolver decides it: a User by name, a
// Group by membership, a ServiceAccount by its username (its namespace
// defaulting to a RoleBinding's).
func appliesTo(user string, groups []string, o *Object) (int, bool) {
	for i, s := range o.Subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if user == s.Name {
				return i, true
			}
		case rbacv1.GroupKind:
			if slices.Contains(groups, s.Name) {
				return i, true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = o.Key.Namespace
			}
			if ns != "" && isServiceAccount(user, ns, s.Name) {
				return i, true
			}
		}
	}
	return 0, false
}

// isServiceAccount says whether user is "system:serviceaccount:ns:name".
func isServiceAccount(user, ns, name string) bool {
	rest, ok := strings.CutPrefix(user, ServiceAccountUsernamePrefix)
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, ns)
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, ":")
	return ok && rest == name
}

// Reason is the reason Kubernetes' RBAC authorizer gives: `RBAC: allowed
// by ClusterRoleBinding "b" of ClusterRole "r" to User "alice"` (a
// RoleBinding is named "name/namespace"), or the resolution errors, or "".
func (d Decision) Reason() string {
	if !d.Allowed {
		if len(d.Errors) == 0 {
			return ""
		}
		return "RBAC: " + d.EvaluationError()
	}
	b := d.Binding
	name, ns := b.Key.Name, ""
	if b.Key.Kind == KindRoleBinding {
		name, ns = b.Key.Name+"/"+b.Key.Namespace, b.Key.Namespace
	}
	return fmt.Sprintf("RBAC: allowed by %s %q of %s %q to %s", b.Key.Kind, name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(d.Subject, ns))
}

// EvaluationError joins the resolution errors as Kubernetes' error
// aggregate prints them: one message alone, several as "[a, b]".
func (d Decision) EvaluationError() string {
	switch len(d.Errors) {
	case 0:
		return ""
	case 1:
		return d.Errors[0]
	}
	return "[" + strings.Join(d.Errors, ", ") + "]"
}

// describeSubject names a subject as Kubernetes' reasons do: `User
// "alice"`, `ServiceAccount "name/namespace"`.
func describeSubject(s rbacv1.Subject, bindingNamespace string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+ns)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// SourcedRule is a rule that applies to a user and where it comes from.
type SourcedRule struct {
	Rule    rbacv1.PolicyRule
	Binding *Object
	RoleKey Key
}

// RulesFor returns every rule that applies to the user in namespace, in
// the order the authorizer visits them, and the resolution errors (when
// there are any, the list is incomplete), as Kubernetes' rule resolver
// answers a SelfSubjectRulesReview.
func (s *Snapshot) RulesFor(user string, groups []string, namespace string) ([]SourcedRule, []string) {
	var (
		rules []SourcedRule
		errs  []string
	)
	for _, b := range s.candidates(user, groups, namespace) {
		role := s.objects[b.roleKey]
		if b.role == nil || role == nil {
			if msg := b.resolutionError(); !slices.Contains(errs, msg) {
				errs = append(errs, msg)
			}
			continue
		}
		for _, r := range role.Rules {
			rules = append(rules, SourcedRule{Rule: r, Binding: b.obj, RoleKey: b.roleKey})
		}
	}
	return rules, errs
}

// The groups Kubernetes' authentication adds.
const (
	GroupAuthenticated   = "system:authenticated"
	GroupUnauthenticated = "system:unauthenticated"
	GroupServiceAccounts = "system:serviceaccounts"
	UserAnonymous        = "system:anonymous"
)

// ImpliedGroups returns groups with the groups Kubernetes adds to an
// identity, the way kube-apiserver's authentication (and impersonation,
// which "kubectl auth can-i --as" uses) does:
//
//   - a service account username given without groups gets
//     system:serviceaccounts and system:serviceaccounts:NAMESPACE;
//   - every user but system:anonymous gets system:authenticated unless
//     system:authenticated or system:unauthenticated is already there;
//   - system:anonymous gets system:unauthenticated unless it is there;
//   - a question without a username (groups only) is left as asked.
//
// A SubjectAccessReview from kube-apiserver already carries these, so
// adding them changes nothing for it; a question asked by hand ("can alice
// ...") gets the groups alice would really have. groups is not modified.
func ImpliedGroups(user string, groups []string) []string {
	if user == "" {
		return groups // a question about groups alone names them all
	}
	out := groups
	if len(groups) == 0 {
		if rest, ok := strings.CutPrefix(user, ServiceAccountUsernamePrefix); ok {
			if ns, name, ok := strings.Cut(rest, ":"); ok && ns != "" && name != "" && !strings.Contains(name, ":") {
				out = []string{GroupServiceAccounts, GroupServiceAccounts + ":" + ns}
			}
		}
	}
	add := GroupAuthenticated
	if user == UserAnonymous {
		if slices.Contains(out, GroupUnauthenticated) {
			return out
		}
		add = GroupUnauthenticated
	} else if slices.Contains(out, GroupAuthenticated) || slices.Contains(out, GroupUnauthenticated) {
		return out
	}
	return append(slices.Clip(out), add)
}
