package rbac

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Snapshot is the RBAC state at one revision: every object, and the
// indexes evaluation reads. It is immutable: a change builds a new
// Snapshot and publishes it whole, so a reader holding one sees one
// revision throughout, however many questions it answers from it.
type Snapshot struct {
	revision uint64
	objects  map[Key]*Object
	// sorted holds every object in Key.less order.
	sorted []*Object
	// users indexes bindings by the username a subject matches: a User
	// subject by its name, a ServiceAccount subject by its
	// "system:serviceaccount:NS:NAME" username. groups indexes Group
	// subjects by name.
	users  map[string]*subjectBindings
	groups map[string]*subjectBindings
	// perms numbers the permissions of the roles' literal rules.
	perms permissions
}

// subjectBindings are the bindings one subject key appears in, each list
// in visiting order (ascending ord), each binding once.
type subjectBindings struct {
	cluster []*binding
	byNS    map[string][]*binding
}

// binding is a RoleBinding or ClusterRoleBinding with its role resolved.
type binding struct {
	obj *Object
	// ord is the binding's place in the order the authorizer visits
	// bindings: ClusterRoleBindings by name, then RoleBindings by
	// namespace and name. Kubernetes visits in its cache's order, which
	// is arbitrary; a fixed order makes every member name the same
	// binding when several allow.
	ord int
	// role is the referenced role's rules; nil when it does not exist.
	role *compiledRole
	// roleKey names the referenced role (its namespace is the binding's
	// for a Role).
	roleKey Key
}

// ServiceAccountUsernamePrefix starts the username of a service account:
// "system:serviceaccount:NAMESPACE:NAME".
const ServiceAccountUsernamePrefix = "system:serviceaccount:"

// emptySnapshot is the state before any RBAC object was applied.
func emptySnapshot() *Snapshot {
	return build(0, map[Key]*Object{})
}

// build makes the snapshot of objs at revision. objs becomes the
// snapshot's and must not be changed afterwards.
func build(revision uint64, objs map[Key]*Object) *Snapshot {
	s := &Snapshot{revision: revision, objects: objs, users: map[string]*subjectBindings{}, groups: map[string]*subjectBindings{}, perms: permissions{}}
	s.sorted = make([]*Object, 0, len(objs))
	for _, o := range objs {
		s.sorted = append(s.sorted, o)
	}
	slices.SortFunc(s.sorted, func(a, b *Object) int { return compareKeys(a.Key, b.Key) })
	// Roles come first in sorted: compile them, numbering permissions in
	// a fixed order.
	roles := map[Key]*compiledRole{}
	for _, o := range s.sorted {
		if o.IsRole() {
			roles[o.Key] = compileRole(o.Rules, s.perms)
		}
	}
	// sorted lists ClusterRoleBindings by name, then RoleBindings by
	// namespace and name: the visiting order, so ord follows it.
	ord := 0
	for _, o := range s.sorted {
		if o.IsRole() {
			continue
		}
		b := &binding{obj: o, ord: ord}
		ord++
		b.roleKey = Key{Kind: o.RoleRef.Kind, Name: o.RoleRef.Name}
		if o.RoleRef.Kind == KindRole {
			b.roleKey.Namespace = o.Key.Namespace
		}
		b.role = roles[b.roleKey]
		for _, sub := range o.Subjects {
			switch sub.Kind {
			case rbacv1.UserKind:
				s.index(s.users, sub.Name, b)
			case rbacv1.GroupKind:
				s.index(s.groups, sub.Name, b)
			case rbacv1.ServiceAccountKind:
				// A subject without a namespace means the binding's
				// namespace; in a ClusterRoleBinding it matches no one.
				ns := sub.Namespace
				if ns == "" {
					ns = o.Key.Namespace
				}
				if ns != "" {
					s.index(s.users, ServiceAccountUsernamePrefix+ns+":"+sub.Name, b)
				}
			}
		}
	}
	return s
}

// index adds b under key, once: bindings arrive in visiting order, so
// each list stays sorted and a repeat is the list's last element.
func (s *Snapshot) index(m map[string]*subjectBindings, key string, b *binding) {
	sb := m[key]
	if sb == nil {
		sb = &subjectBindings{}
		m[key] = sb
	}
	if b.obj.Key.Kind == KindClusterRoleBinding {
		if n := len(sb.cluster); n == 0 || sb.cluster[n-1] != b {
			sb.cluster = append(sb.cluster, b)
		}
		return
	}
	if sb.byNS == nil {
		sb.byNS = map[string][]*binding{}
	}
	l := sb.byNS[b.obj.Key.Namespace]
	if n := len(l); n == 0 || l[n-1] != b {
		sb.byNS[b.obj.Key.Namespace] = append(l, b)
	}
}

// Revision is the raft index of the last entry that changed the RBAC
// objects (0 before any did).
func (s *Snapshot) Revision() uint64 { return s.revision }

// Len is the number of objects.
func (s *Snapshot) Len() int { return len(s.sorted) }

// Get returns the object with key k, or nil.
func (s *Snapshot) Get(k Key) *Object { return s.objects[k] }

// List returns the objects of the given kinds (all when none) in the
// namespace (every namespace, and the cluster-scoped objects, when
// empty), in kind, namespace, name order.
func (s *Snapshot) List(kinds []string, namespace string) []*Object {
	var out []*Object
	for _, o := range s.sorted {
		if len(kinds) > 0 && !slices.Contains(kinds, o.Key.Kind) {
			continue
		}
		if namespace != "" && o.Key.Namespace != namespace {
			continue
		}
		out = append(out, o)
	}
	return out
}
