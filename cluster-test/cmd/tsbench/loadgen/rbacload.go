package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// SubjectAccessReviewPath is the SubjectAccessReview v1 endpoint of a
// member's HTTP listener.
const SubjectAccessReviewPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

// RBACPolicy is a generated RBAC snapshot of the shape issue 7 budgets for,
// and the questions to ask it with the decision each must get. It has
// the shape of server/rbac's BenchmarkAuthorize: ClusterRoles of 10 rules
// (verbs, an API group, a resource and its status subresource, no
// wildcards), bindings a tenth ClusterRoleBindings and the rest
// RoleBindings in 100 namespaces, each binding two of 5,000 users and one
// of 200 groups; a question is a user with three groups, a namespace, a
// verb and a resource (a fifth of them the status subresource).
//
// The expected decisions come from a model of RBAC restricted to what the
// policy uses (exact names, no wildcards, no aggregation): allowed when a
// binding of the user or one of its groups, cluster-wide or in the
// question's namespace, refers to a role with a rule naming the verb, the
// group and the resource. TestRBACPolicyModelMatchesAuthorizer checks it
// against server/rbac.
type RBACPolicy struct {
	Roles     []rbacv1.ClusterRole
	Bindings  []RBACBinding
	Questions []RBACQuestion
}

// RBACBinding is a ClusterRoleBinding (Namespace "") or a RoleBinding.
type RBACBinding struct {
	Name, Namespace string
	Users           []string
	Group           string
	Role            int // index in Roles
}

// RBACQuestion is one SubjectAccessReview and the decision it must get.
type RBACQuestion struct {
	User                                      string
	Groups                                    []string
	Namespace, Verb, APIGroup, Resource, Name string
	Subresource                               string
	Allowed                                   bool
}

// Fixed vocabularies of the generated policy.
var (
	rbacResources = []string{"pods", "services", "configmaps", "secrets", "deployments", "jobs", "nodes", "endpoints", "events", "leases"}
	rbacGroups    = []string{"", "apps", "batch", "coordination.k8s.io"}
	rbacVerbs     = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
)

// NewRBACPolicy generates roles ClusterRoles, bindings bindings and
// questions questions from seed (the same seed gives the same policy).
func NewRBACPolicy(roles, bindings, questions int, seed uint64) *RBACPolicy {
	rng := rand.New(rand.NewPCG(seed, 7))
	p := &RBACPolicy{}
	for i := 0; i < roles; i++ {
		r := rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-role-%d", i)},
		}
		for j := 0; j < 10; j++ {
			res := rbacResources[rng.IntN(len(rbacResources))]
			r.Rules = append(r.Rules, rbacv1.PolicyRule{
				APIGroups: []string{rbacGroups[rng.IntN(len(rbacGroups))]},
				Resources: []string{res, res + "/status"},
				Verbs:     []string{rbacVerbs[rng.IntN(len(rbacVerbs))], rbacVerbs[rng.IntN(len(rbacVerbs))]},
			})
		}
		p.Roles = append(p.Roles, r)
	}
	for i := 0; i < bindings; i++ {
		b := RBACBinding{
			Name:  fmt.Sprintf("bench-binding-%d", i),
			Users: []string{fmt.Sprintf("bench-user-%d", rng.IntN(5000)), fmt.Sprintf("bench-user-%d", rng.IntN(5000))},
			Group: fmt.Sprintf("bench-group-%d", rng.IntN(200)),
			Role:  rng.IntN(roles),
		}
		if i%10 != 0 {
			b.Namespace = fmt.Sprintf("ns-%d", rng.IntN(100))
		}
		p.Bindings = append(p.Bindings, b)
	}
	for i := 0; i < questions; i++ {
		q := RBACQuestion{
			User: fmt.Sprintf("bench-user-%d", rng.IntN(5000)),
			Groups: []string{fmt.Sprintf("bench-group-%d", rng.IntN(200)), fmt.Sprintf("bench-group-%d", rng.IntN(200)),
				fmt.Sprintf("bench-group-%d", rng.IntN(200))},
			Namespace: fmt.Sprintf("ns-%d", rng.IntN(100)),
			Verb:      rbacVerbs[rng.IntN(len(rbacVerbs))],
			APIGroup:  rbacGroups[rng.IntN(len(rbacGroups))],
			Resource:  rbacResources[rng.IntN(len(rbacResources))],
			Name:      "x",
		}
		if rng.IntN(5) == 0 {
			q.Subresource = "status"
		}
		p.Questions = append(p.Questions, q)
	}
	p.decide()
	return p
}

// decide sets every question's expected decision from the model.
func (p *RBACPolicy) decide() {
	bySubject := map[string][]int{}
	for i, b := range p.Bindings {
		for _, u := range b.Users {
			bySubject["u:"+u] = append(bySubject["u:"+u], i)
		}
		bySubject["g:"+b.Group] = append(bySubject["g:"+b.Group], i)
	}
	for qi := range p.Questions {
		q := &p.Questions[qi]
		res := q.Resource
		if q.Subresource != "" {
			res += "/" + q.Subresource
		}
		cands := slices.Clone(bySubject["u:"+q.User])
		for _, g := range q.Groups {
			cands = append(cands, bySubject["g:"+g]...)
		}
		q.Allowed = false
		for _, bi := range cands {
			b := p.Bindings[bi]
			if b.Namespace != "" && b.Namespace != q.Namespace {
				continue
			}
			for _, r := range p.Roles[b.Role].Rules {
				if slices.Contains(r.Verbs, q.Verb) && slices.Contains(r.APIGroups, q.APIGroup) && slices.Contains(r.Resources, res) {
					q.Allowed = true
				}
			}
		}
	}
}

// AllowedShare is the fraction of questions whose answer is "allowed".
func (p *RBACPolicy) AllowedShare() float64 {
	n := 0
	for _, q := range p.Questions {
		if q.Allowed {
			n++
		}
	}
	return float64(n) / float64(max(1, len(p.Questions)))
}

// Documents returns the policy as Kubernetes JSON objects, at most per in
// each slice (one ApplyRBAC request each), roles first so every binding's
// role exists when it is applied.
func (p *RBACPolicy) Documents(per int) ([][][]byte, error) {
	var all [][]byte
	for i := range p.Roles {
		d, err := json.Marshal(&p.Roles[i])
		if err != nil {
			return nil, err
		}
		all = append(all, d)
	}
	for _, b := range p.Bindings {
		subjects := []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: b.Users[0]},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: b.Users[1]},
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: b.Group},
		}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: p.Roles[b.Role].Name}
		var obj any
		if b.Namespace == "" {
			obj = &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
				ObjectMeta: metav1.ObjectMeta{Name: b.Name}, Subjects: subjects, RoleRef: ref}
		} else {
			obj = &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
				ObjectMeta: metav1.ObjectMeta{Name: b.Name, Namespace: b.Namespace}, Subjects: subjects, RoleRef: ref}
		}
		d, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		all = append(all, d)
	}
	var out [][][]byte
	for i := 0; i < len(all); i += per {
		out = append(out, all[i:min(i+per, len(all))])
	}
	return out, nil
}

// ApplyRBACPolicy stores the policy through ApplyRBAC (what tokenctl rbac
// apply sends), per objects a request, and returns the RBAC revision after
// the last.
func ApplyRBACPolicy(ctx context.Context, c tokenstorev1.RBACServiceClient, p *RBACPolicy, per int) (uint64, error) {
	batches, err := p.Documents(per)
	if err != nil {
		return 0, fmt.Errorf("encode RBAC objects: %w", err)
	}
	var rev uint64
	for i, docs := range batches {
		r, err := c.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Documents: docs})
		if err != nil {
			return 0, fmt.Errorf("apply RBAC batch %d of %d: %w", i+1, len(batches), err)
		}
		rev = r.GetRbacRevision()
	}
	return rev, nil
}

// SubjectAccessReviewOp posts a SubjectAccessReview v1 for each of the
// policy's questions in turn to url (a member's SubjectAccessReviewPath)
// and checks every answer: HTTP 200 from member, the expected decision,
// never denied (RBAC has no deny rules).
func SubjectAccessReviewOp(client *http.Client, url string, p *RBACPolicy, member string) (Op, error) {
	bodies := make([][]byte, len(p.Questions))
	for i, q := range p.Questions {
		var err error
		bodies[i], err = json.Marshal(&authorizationv1.SubjectAccessReview{
			TypeMeta: metaV1("authorization.k8s.io/v1", "SubjectAccessReview"),
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User: q.User, Groups: q.Groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: q.Namespace, Verb: q.Verb, Group: q.APIGroup,
					Resource: q.Resource, Subresource: q.Subresource, Name: q.Name},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("encode SubjectAccessReview: %w", err)
		}
	}
	n := len(bodies)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		var sar authorizationv1.SubjectAccessReview
		if err := postJSON(ctx, client, url, bodies[i], member, &sar); err != nil {
			return err
		}
		if sar.Status.Allowed != p.Questions[i].Allowed || sar.Status.Denied {
			return Wrongf("question %d: allowed %v denied %v, want allowed %v (%s)", i, sar.Status.Allowed, sar.Status.Denied, p.Questions[i].Allowed, sar.Status.Reason)
		}
		return nil
	}, nil
}

// AuthorizeOp asks the policy's questions in turn through gRPC Authorize
// at member (bounded reads, as the webhook) and checks every answer.
func AuthorizeOp(clients []tokenstorev1.AuthServiceClient, p *RBACPolicy, member string) Op {
	n := len(p.Questions)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		q := &p.Questions[i]
		r, err := clients[w%len(clients)].Authorize(ctx, &tokenstorev1.AuthorizeRequest{
			User: &tokenstorev1.UserInfo{Username: q.User, Groups: q.Groups},
			ResourceAttributes: &tokenstorev1.ResourceAttributes{Namespace: q.Namespace, Verb: q.Verb, Group: q.APIGroup,
				Resource: q.Resource, Subresource: q.Subresource, Name: q.Name},
			Consistency: Bounded.C,
		})
		if err != nil {
			return err
		}
		if got := r.GetHeader().GetMember(); got != member {
			return Wrongf("answered by %q, asked %s", got, member)
		}
		if r.GetAllowed() != q.Allowed {
			return Wrongf("question %d: allowed %v, want %v (%s)", i, r.GetAllowed(), q.Allowed, r.GetReason())
		}
		return nil
	}
}
