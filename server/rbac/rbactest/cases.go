// Package rbactest holds an RBAC policy and a table of authorization
// questions with the answers Kubernetes' RBAC authorizer gives for it. The
// unit tests of server/rbac evaluate the table in process; the cluster
// tests ask it of every member of a real cluster, through gRPC and the
// SubjectAccessReview webhook, and require the same answers everywhere.
//
// Each case's answer was worked out from Kubernetes' rules
// (plugin/pkg/auth/authorizer/rbac and pkg/apis/rbac/v1's evaluation
// helpers); the comment on a case says which rule it exercises.
package rbactest

// Policy is the RBAC objects the cases are asked against: a multi-document
// YAML stream, as "tokenctl rbac apply -f" reads it.
const Policy = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: log-reader}
rules:
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scale-all}
rules:
- apiGroups: ["*"]
  resources: ["*/scale"]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: named-cm}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [app-config]
  verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deployments-any-verb}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: jobs-any-group}
rules:
- apiGroups: ["*"]
  resources: [jobs]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: health}
rules:
- nonResourceURLs: [/healthz, /healthz/*]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: all-urls}
rules:
- nonResourceURLs: ["*"]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: logs-urls}
rules:
- nonResourceURLs: [/logs/*]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything}
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["*"]
- nonResourceURLs: ["*"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secret-reader}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ci-jobs}
rules:
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
  labels: {example.com/aggregate-to-top: "true"}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {example.com/aggregate-to-monitoring: "true"}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: ["*"]   # replaced by the aggregated rules, as Kubernetes does
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring-endpoints
  labels: {example.com/aggregate-to-monitoring: "true"}
rules:
- apiGroups: [""]
  resources: [endpoints]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring-services
  labels: {example.com/aggregate-to-monitoring: "true"}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: top
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {example.com/aggregate-to-top: "true"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: top-nodes
  labels: {example.com/aggregate-to-top: "true"}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: dev}
rules:
- apiGroups: [apps]
  resources: [deployments, deployments/scale]
  verbs: [create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-pods}
subjects: [{kind: User, name: alice}]
roleRef: {kind: ClusterRole, name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-pods, namespace: dev}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-deployer, namespace: dev}
subjects: [{kind: User, name: bob}]
roleRef: {kind: Role, name: deployer}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: devs-logs}
subjects: [{kind: Group, name: devs}]
roleRef: {kind: ClusterRole, name: log-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scalers}
subjects: [{kind: User, name: carol}]
roleRef: {kind: ClusterRole, name: scale-all}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cm, namespace: dev}
subjects: [{kind: User, name: carol}]
roleRef: {kind: ClusterRole, name: named-cm}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dave-deployments}
subjects: [{kind: User, name: dave}]
roleRef: {kind: ClusterRole, name: deployments-any-verb}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dave-jobs}
subjects: [{kind: User, name: dave}]
roleRef: {kind: ClusterRole, name: jobs-any-group}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: health}
subjects: [{kind: Group, name: "system:authenticated"}]
roleRef: {kind: ClusterRole, name: health}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: auditors}
subjects: [{kind: Group, name: auditors}]
roleRef: {kind: ClusterRole, name: all-urls}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: frank-logs}
subjects: [{kind: User, name: frank}]
roleRef: {kind: ClusterRole, name: logs-urls}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: root}
subjects: [{kind: Group, name: admins}]
roleRef: {kind: ClusterRole, name: everything}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sa-default-ns, namespace: dev}
subjects: [{kind: ServiceAccount, name: builder}]
roleRef: {kind: ClusterRole, name: secret-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sa-other-ns, namespace: dev}
subjects: [{kind: ServiceAccount, name: robot, namespace: ci}]
roleRef: {kind: ClusterRole, name: secret-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: watcher}
subjects:
- {kind: User, name: somebody-else}
- {kind: ServiceAccount, name: watcher, namespace: monitoring}
roleRef: {kind: ClusterRole, name: monitoring}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-sas}
subjects: [{kind: Group, name: "system:serviceaccounts:ci"}]
roleRef: {kind: ClusterRole, name: ci-jobs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: grace-top}
subjects: [{kind: User, name: grace}]
roleRef: {kind: ClusterRole, name: top}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: erin-missing}
subjects: [{kind: User, name: erin}]
roleRef: {kind: ClusterRole, name: does-not-exist}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: erin-missing-role, namespace: dev}
subjects: [{kind: User, name: erin}]
roleRef: {kind: Role, name: nope}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b-second}
subjects: [{kind: User, name: henry}]
roleRef: {kind: ClusterRole, name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: a-first}
subjects: [{kind: User, name: henry}]
roleRef: {kind: ClusterRole, name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: aaa, namespace: dev}
subjects: [{kind: User, name: ivan}]
roleRef: {kind: ClusterRole, name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: zzz}
subjects: [{kind: Group, name: ivans}, {kind: User, name: ivan}]
roleRef: {kind: ClusterRole, name: pod-reader}
`

// Case is one question and Kubernetes' answer.
type Case struct {
	Name string
	// User and Groups are as a SubjectAccessReview carries them; the
	// evaluator adds the implied groups (rbac.ImpliedGroups).
	User   string
	Groups []string
	// Path set makes a non-resource request (Verb, Path); otherwise a
	// resource request.
	Namespace, Verb, Group, Resource, Subresource, ResourceName string
	Path                                                        string

	Allowed bool
	// Binding and Role are the Key strings of what allowed it.
	Binding, Role string
	// Reason is the authorizer's reason, exactly.
	Reason string
}

// Cases are the questions, every rule of Kubernetes' RBAC authorizer in
// turn.
var Cases = []Case{
	// A ClusterRoleBinding grants cluster-wide, in every namespace and
	// across all namespaces; verbs, group and resource must all match.
	{Name: "crb in a namespace", User: "alice", Namespace: "dev", Verb: "get", Resource: "pods", Allowed: true,
		Binding: "ClusterRoleBinding/alice-pods", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "alice-pods" of ClusterRole "pod-reader" to User "alice"`},
	{Name: "crb across namespaces", User: "alice", Verb: "list", Resource: "pods", Allowed: true,
		Binding: "ClusterRoleBinding/alice-pods", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "alice-pods" of ClusterRole "pod-reader" to User "alice"`},
	{Name: "verb not in rule", User: "alice", Namespace: "dev", Verb: "delete", Resource: "pods"},
	{Name: "resource rule does not cover its subresource", User: "alice", Namespace: "dev", Verb: "get", Resource: "pods", Subresource: "log"},
	{Name: "api group must match", User: "alice", Namespace: "dev", Verb: "get", Group: "apps", Resource: "pods"},
	{Name: "unknown user", User: "mallory", Namespace: "dev", Verb: "get", Resource: "pods"},

	// A RoleBinding to a ClusterRole grants its rules in the binding's
	// namespace only; to a Role, the Role of its namespace.
	{Name: "rb to clusterrole in its namespace", User: "bob", Namespace: "dev", Verb: "get", Resource: "pods", Allowed: true,
		Binding: "RoleBinding/dev/bob-pods", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by RoleBinding "bob-pods/dev" of ClusterRole "pod-reader" to User "bob"`},
	{Name: "rb to clusterrole in another namespace", User: "bob", Namespace: "prod", Verb: "get", Resource: "pods"},
	{Name: "rb to clusterrole across namespaces", User: "bob", Verb: "list", Resource: "pods"},
	{Name: "rb to role", User: "bob", Namespace: "dev", Verb: "create", Group: "apps", Resource: "deployments", Allowed: true,
		Binding: "RoleBinding/dev/bob-deployer", Role: "Role/dev/deployer",
		Reason: `RBAC: allowed by RoleBinding "bob-deployer/dev" of Role "deployer" to User "bob"`},
	{Name: "role lists the subresource", User: "bob", Namespace: "dev", Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale", Allowed: true,
		Binding: "RoleBinding/dev/bob-deployer", Role: "Role/dev/deployer",
		Reason: `RBAC: allowed by RoleBinding "bob-deployer/dev" of Role "deployer" to User "bob"`},
	{Name: "rb to role in another namespace", User: "bob", Namespace: "prod", Verb: "create", Group: "apps", Resource: "deployments"},

	// Group subjects match by membership, not by user name.
	{Name: "group subject", User: "zoe", Groups: []string{"devs"}, Namespace: "web", Verb: "get", Resource: "pods", Subresource: "log", Allowed: true,
		Binding: "ClusterRoleBinding/devs-logs", Role: "ClusterRole/log-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "devs-logs" of ClusterRole "log-reader" to Group "devs"`},
	{Name: "subresource rule does not cover the resource", User: "zoe", Groups: []string{"devs"}, Namespace: "web", Verb: "get", Resource: "pods"},
	{Name: "user named like a group", User: "devs", Namespace: "web", Verb: "get", Resource: "pods", Subresource: "log"},

	// "*/scale" matches the scale subresource of any resource, not the
	// resource itself.
	{Name: "*/subresource", User: "carol", Namespace: "web", Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale", Allowed: true,
		Binding: "ClusterRoleBinding/scalers", Role: "ClusterRole/scale-all",
		Reason: `RBAC: allowed by ClusterRoleBinding "scalers" of ClusterRole "scale-all" to User "carol"`},
	{Name: "*/subresource, another resource", User: "carol", Verb: "update", Group: "apps", Resource: "statefulsets", Subresource: "scale", Allowed: true,
		Binding: "ClusterRoleBinding/scalers", Role: "ClusterRole/scale-all",
		Reason: `RBAC: allowed by ClusterRoleBinding "scalers" of ClusterRole "scale-all" to User "carol"`},
	{Name: "*/subresource, not the resource", User: "carol", Namespace: "web", Verb: "update", Group: "apps", Resource: "deployments"},
	{Name: "*/subresource, other subresource", User: "carol", Namespace: "web", Verb: "update", Group: "apps", Resource: "deployments", Subresource: "status"},

	// resourceNames restrict to those names, so never a request without
	// a name.
	{Name: "resourceName listed", User: "carol", Namespace: "dev", Verb: "get", Resource: "configmaps", ResourceName: "app-config", Allowed: true,
		Binding: "RoleBinding/dev/cm", Role: "ClusterRole/named-cm",
		Reason: `RBAC: allowed by RoleBinding "cm/dev" of ClusterRole "named-cm" to User "carol"`},
	{Name: "resourceName not listed", User: "carol", Namespace: "dev", Verb: "get", Resource: "configmaps", ResourceName: "other"},
	{Name: "resourceNames, request without a name", User: "carol", Namespace: "dev", Verb: "get", Resource: "configmaps"},

	// '*' wildcards in verbs, apiGroups and resources.
	{Name: "* verb", User: "dave", Namespace: "web", Verb: "deletecollection", Group: "apps", Resource: "deployments", Allowed: true,
		Binding: "ClusterRoleBinding/dave-deployments", Role: "ClusterRole/deployments-any-verb",
		Reason: `RBAC: allowed by ClusterRoleBinding "dave-deployments" of ClusterRole "deployments-any-verb" to User "dave"`},
	{Name: "* verb, group still matters", User: "dave", Namespace: "web", Verb: "get", Group: "extensions", Resource: "deployments"},
	{Name: "* api group", User: "dave", Namespace: "web", Verb: "create", Group: "batch", Resource: "jobs", Allowed: true,
		Binding: "ClusterRoleBinding/dave-jobs", Role: "ClusterRole/jobs-any-group",
		Reason: `RBAC: allowed by ClusterRoleBinding "dave-jobs" of ClusterRole "jobs-any-group" to User "dave"`},
	{Name: "* resource covers subresources", User: "root", Groups: []string{"admins"}, Verb: "patch", Resource: "nodes", Subresource: "status", Allowed: true,
		Binding: "ClusterRoleBinding/root", Role: "ClusterRole/everything",
		Reason: `RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "everything" to Group "admins"`},
	{Name: "* non-resource URL, any verb", User: "root", Groups: []string{"admins"}, Verb: "post", Path: "/any/path", Allowed: true,
		Binding: "ClusterRoleBinding/root", Role: "ClusterRole/everything",
		Reason: `RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "everything" to Group "admins"`},

	// nonResourceURLs: exact, "*", and a trailing '*' as a prefix.
	{Name: "non-resource exact", User: "newbie", Groups: []string{"system:authenticated"}, Verb: "get", Path: "/healthz", Allowed: true,
		Binding: "ClusterRoleBinding/health", Role: "ClusterRole/health",
		Reason: `RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"`},
	{Name: "non-resource prefix", User: "newbie", Groups: []string{"system:authenticated"}, Verb: "get", Path: "/healthz/etcd", Allowed: true,
		Binding: "ClusterRoleBinding/health", Role: "ClusterRole/health",
		Reason: `RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"`},
	{Name: "non-resource prefix is not a substring match", User: "newbie", Groups: []string{"system:authenticated"}, Verb: "get", Path: "/healthzfoo"},
	{Name: "non-resource verb", User: "newbie", Groups: []string{"system:authenticated"}, Verb: "post", Path: "/healthz"},
	{Name: "non-resource *", User: "audra", Groups: []string{"auditors"}, Verb: "get", Path: "/debug/pprof/heap", Allowed: true,
		Binding: "ClusterRoleBinding/auditors", Role: "ClusterRole/all-urls",
		Reason: `RBAC: allowed by ClusterRoleBinding "auditors" of ClusterRole "all-urls" to Group "auditors"`},
	{Name: "non-resource rule does not cover resources", User: "audra", Groups: []string{"auditors"}, Verb: "get", Resource: "pods"},
	{Name: "trailing * prefix", User: "frank", Verb: "get", Path: "/logs/kube-apiserver.log", Allowed: true,
		Binding: "ClusterRoleBinding/frank-logs", Role: "ClusterRole/logs-urls",
		Reason: `RBAC: allowed by ClusterRoleBinding "frank-logs" of ClusterRole "logs-urls" to User "frank"`},
	{Name: "trailing * prefix needs its slash", User: "frank", Verb: "get", Path: "/logs"},

	// The implicit system:authenticated group: added to every user but
	// system:anonymous.
	{Name: "implicit system:authenticated", User: "newbie", Verb: "get", Path: "/healthz", Allowed: true,
		Binding: "ClusterRoleBinding/health", Role: "ClusterRole/health",
		Reason: `RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"`},
	{Name: "anonymous is not authenticated", User: "system:anonymous", Verb: "get", Path: "/healthz"},
	{Name: "system:unauthenticated given", User: "newbie", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/healthz"},

	// ServiceAccount subjects: by namespace and name; without a
	// namespace, a RoleBinding's own.
	{Name: "service account, binding's namespace", User: "system:serviceaccount:dev:builder", Namespace: "dev", Verb: "get", Resource: "secrets", Allowed: true,
		Binding: "RoleBinding/dev/sa-default-ns", Role: "ClusterRole/secret-reader",
		Reason: `RBAC: allowed by RoleBinding "sa-default-ns/dev" of ClusterRole "secret-reader" to ServiceAccount "builder/dev"`},
	{Name: "service account, other request namespace", User: "system:serviceaccount:dev:builder", Namespace: "prod", Verb: "get", Resource: "secrets"},
	{Name: "service account of another namespace", User: "system:serviceaccount:prod:builder", Namespace: "dev", Verb: "get", Resource: "secrets"},
	{Name: "service account, explicit namespace", User: "system:serviceaccount:ci:robot", Namespace: "dev", Verb: "get", Resource: "secrets", Allowed: true,
		Binding: "RoleBinding/dev/sa-other-ns", Role: "ClusterRole/secret-reader",
		Reason: `RBAC: allowed by RoleBinding "sa-other-ns/dev" of ClusterRole "secret-reader" to ServiceAccount "robot/ci"`},
	{Name: "service account, explicit namespace not defaulted", User: "system:serviceaccount:dev:robot", Namespace: "dev", Verb: "get", Resource: "secrets"},
	{Name: "service accounts group of a namespace", User: "system:serviceaccount:ci:deployer", Namespace: "ci", Verb: "create", Group: "batch", Resource: "jobs", Allowed: true,
		Binding: "ClusterRoleBinding/ci-sas", Role: "ClusterRole/ci-jobs",
		Reason: `RBAC: allowed by ClusterRoleBinding "ci-sas" of ClusterRole "ci-jobs" to Group "system:serviceaccounts:ci"`},
	{Name: "service account groups only when none given", User: "system:serviceaccount:ci:deployer", Groups: []string{"other"}, Namespace: "ci", Verb: "create", Group: "batch", Resource: "jobs"},

	// Aggregated ClusterRoles: the rules of the roles their selectors
	// match, their own rules replaced; nested aggregation.
	{Name: "aggregated role", User: "system:serviceaccount:monitoring:watcher", Namespace: "web", Verb: "list", Resource: "endpoints", Allowed: true,
		Binding: "ClusterRoleBinding/watcher", Role: "ClusterRole/monitoring",
		Reason: `RBAC: allowed by ClusterRoleBinding "watcher" of ClusterRole "monitoring" to ServiceAccount "watcher/monitoring"`},
	{Name: "aggregated role, second source", User: "system:serviceaccount:monitoring:watcher", Verb: "list", Resource: "services", Allowed: true,
		Binding: "ClusterRoleBinding/watcher", Role: "ClusterRole/monitoring",
		Reason: `RBAC: allowed by ClusterRoleBinding "watcher" of ClusterRole "monitoring" to ServiceAccount "watcher/monitoring"`},
	{Name: "aggregated role's own rules replaced", User: "system:serviceaccount:monitoring:watcher", Namespace: "web", Verb: "get", Resource: "secrets"},
	{Name: "nested aggregation", User: "grace", Namespace: "web", Verb: "list", Resource: "endpoints", Allowed: true,
		Binding: "ClusterRoleBinding/grace-top", Role: "ClusterRole/top",
		Reason: `RBAC: allowed by ClusterRoleBinding "grace-top" of ClusterRole "top" to User "grace"`},
	{Name: "aggregation, direct source", User: "grace", Verb: "get", Resource: "nodes", Allowed: true,
		Binding: "ClusterRoleBinding/grace-top", Role: "ClusterRole/top",
		Reason: `RBAC: allowed by ClusterRoleBinding "grace-top" of ClusterRole "top" to User "grace"`},

	// A binding to a role that does not exist grants nothing; the reason
	// says why.
	{Name: "missing clusterrole", User: "erin", Verb: "get", Resource: "pods",
		Reason: `RBAC: clusterrole.rbac.authorization.k8s.io "does-not-exist" not found`},
	{Name: "missing clusterrole and role", User: "erin", Namespace: "dev", Verb: "get", Resource: "pods",
		Reason: `RBAC: [clusterrole.rbac.authorization.k8s.io "does-not-exist" not found, role.rbac.authorization.k8s.io "nope" not found]`},

	// Several bindings allow: ClusterRoleBindings before RoleBindings,
	// then by name, the same on every member.
	{Name: "first binding by name", User: "henry", Verb: "get", Resource: "pods", Allowed: true,
		Binding: "ClusterRoleBinding/a-first", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "a-first" of ClusterRole "pod-reader" to User "henry"`},
	{Name: "clusterrolebinding before rolebinding", User: "ivan", Namespace: "dev", Verb: "get", Resource: "pods", Allowed: true,
		Binding: "ClusterRoleBinding/zzz", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "zzz" of ClusterRole "pod-reader" to User "ivan"`},
	{Name: "first applying subject named", User: "ivan", Groups: []string{"ivans"}, Verb: "get", Resource: "pods", Allowed: true,
		Binding: "ClusterRoleBinding/zzz", Role: "ClusterRole/pod-reader",
		Reason: `RBAC: allowed by ClusterRoleBinding "zzz" of ClusterRole "pod-reader" to Group "ivans"`},
}
