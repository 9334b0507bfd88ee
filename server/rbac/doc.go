// Package rbac stores Kubernetes RBAC objects (Role, ClusterRole,
// RoleBinding, ClusterRoleBinding of rbac.authorization.k8s.io/v1) as
// replicated state and answers authorization questions from them exactly as
// Kubernetes' RBAC authorizer does, so every member, and a Kubernetes API
// server holding the same objects, gives the same answer.
//
// # Storage
//
// Durable layout (state.db buckets owned here), version 1:
//
//	rbac/version                         -> uint32 big endian (FormatVersion)
//	rbac/revision                        -> uint64 big endian: the raft index
//	                                        of the last entry that changed an object
//	rbac_objects/<kind>/<namespace>/<name> -> raftstorev1.RBACObject
//
// Objects are stored in Kubernetes' own JSON (encoding 1), canonical:
// apiVersion, kind, name, namespace, labels, annotations and the kind's
// fields, re-encoded by Apply so every member stores the same bytes. The
// rules stored for an aggregated ClusterRole are the aggregated ones, as a
// Kubernetes API server stores them.
//
// # Applying
//
// Store.Apply and Store.Delete run inside State.Apply's transaction and are
// deterministic: they read only the command and the current snapshot. One
// command is one atomic change: with prune, the whole set is replaced. The
// rules of aggregated ClusterRoles are recomputed in the same command. A
// command that changes anything sets the revision to its index; refusals
// (an undecodable object, a name given twice, a missing object to delete,
// an expected revision that moved) are results, the same on every member,
// and change nothing.
//
// Validation (Parse) is the proposer's: it refuses what a Kubernetes API
// server would refuse. Apply checks only what keeps the store consistent,
// so a binary with stricter or looser validation applies the same entries.
//
// # Reading
//
// Apply and Delete stage the new set of objects; Committed, called once
// the transaction has committed (raftstore.Committer), builds one new
// immutable Snapshot with its indexes from the last staged set (one build
// for a batch of entries) and publishes it with one atomic pointer store as
// a View: the snapshot and the applied index it is the state at. Readers load the View and answer from it alone,
// so an answer is computed on exactly one revision, never on a mix of two,
// and carries both the applied index it holds at (View.Applied) and the
// revision of the last RBAC change (Snapshot.Revision). Snapshot and View
// methods are safe for concurrent use; Init, Restore, Apply, Delete and
// Committed run on the raft apply loop only.
//
// # Evaluation
//
// Snapshot.Authorize follows Kubernetes' authorizer: ClusterRoleBindings,
// then the request namespace's RoleBindings; a binding applies when one of
// its subjects matches (User by name, Group by membership, ServiceAccount
// by "system:serviceaccount:NS:NAME", its namespace defaulting to a
// RoleBinding's); a RoleBinding to a ClusterRole grants its rules in the
// binding's namespace only; the first rule that allows decides, with
// Kubernetes' matching of verbs, API groups, resources and subresources
// ("pods/log", "*/scale"), resourceNames, nonResourceURLs (exact, "*" and
// trailing '*') and '*' wildcards. There are no deny rules: not allowed is
// "no opinion". Bindings are visited in a fixed order (ClusterRoleBindings
// by name, RoleBindings by namespace and name) so every member names the
// same binding when several allow. Bindings are indexed by subject, so an
// answer reads the bindings of the user's name and groups only.
//
// ImpliedGroups adds the groups Kubernetes' authentication adds
// (system:authenticated, a service account's groups); callers apply it to
// questions asked by hand.
package rbac
