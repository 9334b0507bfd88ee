package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	rbacv1 "k8s.io/api/rbac/v1"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
	"github.com/tokenstore/tokenstore/server/webhook"
)

// Every authorization, over gRPC (AuthService.Authorize) or through the
// SubjectAccessReview webhook, takes one path, rbacService.authorize:
//
//  1. the read gate admits the read or fails closed (UNAVAILABLE / 503),
//     exactly as for authentication;
//  2. the implied groups are added (rbac.ImpliedGroups: what Kubernetes'
//     authentication adds, so "can alice ..." asks about the alice
//     Kubernetes would see);
//  3. the published RBAC View answers: one immutable snapshot, so the
//     decision, the binding and role it names and both revisions it
//     carries (the applied index, and the RBAC revision) come from one
//     state, never a mix of two.

// Input limits of the RBAC API, refused with InvalidArgument beyond them.
const (
	// maxRBACDocuments bounds the documents of one ApplyRBAC; the request
	// size (--max-request-bytes) and the entry size bound it further.
	maxRBACDocuments = 20000
	maxRBACRefs      = 20000
	maxAuthzField    = 1024
)

// rbacService implements tokenstorev1.RBACServiceServer and the
// authorization path shared by AuthService.Authorize and the
// SubjectAccessReview webhook.
type rbacService struct {
	tokenstorev1.UnimplementedRBACServiceServer
	s *Server
	// decisions counts answers by path (grpc, subjectaccessreview) and
	// decision (allowed, no_opinion).
	decisions *prometheus.CounterVec
}

// newRBACService makes the service and registers its metrics. Call after
// the member's metrics and state exist.
func newRBACService(s *Server) *rbacService {
	r := &rbacService{s: s}
	r.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenstore_authorizations_total",
		Help: "Authorization answers from the RBAC snapshot, by path (grpc, subjectaccessreview) and decision (allowed, no_opinion).",
	}, []string{"path", "decision"})
	rbacView := func() *rbac.View { return s.state.RBAC().View() }
	s.metrics.reg.MustRegister(r.decisions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenstore_rbac_revision",
			Help: "Raft index of the last entry that changed the RBAC objects this member answers from.",
		}, func() float64 { return float64(rbacView().Revision()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenstore_rbac_objects",
			Help: "RBAC objects (roles, cluster roles and their bindings) this member answers from.",
		}, func() float64 { return float64(rbacView().Len()) }),
	)
	return r
}

// proposeRBAC replicates cmd and returns the RBAC store's result at its
// index.
func (r *rbacService) propose(ctx context.Context, what string, cmd *raftstorev1.Command) (rbac.Result, uint64, error) {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return rbac.Result{}, 0, status.Errorf(codes.Internal, "%s: encode: %v", what, err)
	}
	res, err := r.s.node.Propose(ctx, b)
	if err != nil {
		r.s.metrics.proposals.WithLabelValues("failed").Inc()
		return rbac.Result{}, 0, rpcError(what, err)
	}
	r.s.metrics.proposals.WithLabelValues("applied").Inc()
	out, _ := res.Value.(rbac.Result)
	if out.Err != nil {
		code := codes.FailedPrecondition
		switch {
		case errors.Is(out.Err, rbac.ErrInvalid):
			code = codes.InvalidArgument
		case errors.Is(out.Err, rbac.ErrNotFound):
			code = codes.NotFound
		case errors.Is(out.Err, rbac.ErrConflict):
			code = codes.Aborted
		}
		return out, res.Index, status.Errorf(code, "%s refused: %v", what, out.Err)
	}
	return out, res.Index, nil
}

func apiRef(k rbac.Key) *tokenstorev1.RBACObjectRef {
	return &tokenstorev1.RBACObjectRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
}

func apiChanges(cs []rbac.Change) []*tokenstorev1.RBACChange {
	out := make([]*tokenstorev1.RBACChange, len(cs))
	for i, c := range cs {
		a := tokenstorev1.RBACAction_RBAC_ACTION_UNSPECIFIED
		switch c.Action {
		case rbac.Created:
			a = tokenstorev1.RBACAction_RBAC_ACTION_CREATED
		case rbac.Configured:
			a = tokenstorev1.RBACAction_RBAC_ACTION_CONFIGURED
		case rbac.Unchanged:
			a = tokenstorev1.RBACAction_RBAC_ACTION_UNCHANGED
		case rbac.Pruned:
			a = tokenstorev1.RBACAction_RBAC_ACTION_PRUNED
		case rbac.Deleted:
			a = tokenstorev1.RBACAction_RBAC_ACTION_DELETED
		}
		out[i] = &tokenstorev1.RBACChange{Ref: apiRef(c.Key), Action: a}
	}
	return out
}

func apiObject(o *rbac.Object) *tokenstorev1.RBACObject {
	return &tokenstorev1.RBACObject{Ref: apiRef(o.Key), Json: o.JSON()}
}

// refKey checks an object reference from a request.
func refKey(ref *tokenstorev1.RBACObjectRef) (rbac.Key, error) {
	k := rbac.Key{Kind: ref.GetKind(), Namespace: ref.GetNamespace(), Name: ref.GetName()}
	if !validKind(k.Kind) {
		return k, invalid("kind %q: want one of Role, ClusterRole, RoleBinding, ClusterRoleBinding", k.Kind)
	}
	if k.Name == "" {
		return k, invalid("%s: name is required", k.Kind)
	}
	if cluster := k.Kind == rbac.KindClusterRole || k.Kind == rbac.KindClusterRoleBinding; cluster != (k.Namespace == "") {
		if cluster {
			return k, invalid("%s %q: a %s has no namespace", k.Kind, k.Name, k.Kind)
		}
		return k, invalid("%s %q: a namespace is required", k.Kind, k.Name)
	}
	return k, nil
}

func validKind(kind string) bool {
	for _, k := range rbac.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// ApplyRBAC parses and validates the documents here, on the proposer, as a
// Kubernetes API server would, and replicates the objects in one entry.
func (r *rbacService) ApplyRBAC(ctx context.Context, req *tokenstorev1.ApplyRBACRequest) (*tokenstorev1.ApplyRBACResponse, error) {
	if len(req.GetDocuments()) > maxRBACDocuments {
		return nil, invalid("at most %d documents", maxRBACDocuments)
	}
	var objs []*rbac.Object
	seen := map[rbac.Key]bool{}
	for i, doc := range req.GetDocuments() {
		got, err := rbac.Parse(doc)
		if err != nil {
			return nil, invalid("document %d: %v", i+1, err)
		}
		for _, o := range got {
			if seen[o.Key] {
				return nil, invalid("document %d: %s given twice", i+1, o.Key)
			}
			seen[o.Key] = true
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		// With prune, an empty set would delete every object: that takes
		// an explicit delete, never an empty or mistyped file.
		return nil, invalid("no RBAC objects given")
	}
	cmd := &raftstorev1.Command{Op: &raftstorev1.Command_ApplyRbac{ApplyRbac: &raftstorev1.ApplyRBAC{
		Objects: rbac.Stored(objs), Prune: req.GetPrune(), ExpectedRevision: req.GetExpectedRbacRevision(),
	}}}
	res, idx, err := r.propose(ctx, "apply RBAC objects", cmd)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.ApplyRBACResponse{Header: r.s.header(idx), Changes: apiChanges(res.Changes), RbacRevision: res.Revision}, nil
}

// BootstrapRBAC applies Kubernetes' default user-facing ClusterRoles,
// which this binary carries, without pruning anything else.
func (r *rbacService) BootstrapRBAC(ctx context.Context, _ *tokenstorev1.BootstrapRBACRequest) (*tokenstorev1.BootstrapRBACResponse, error) {
	objs, err := rbac.Bootstrap()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	cmd := &raftstorev1.Command{Op: &raftstorev1.Command_ApplyRbac{ApplyRbac: &raftstorev1.ApplyRBAC{Objects: rbac.Stored(objs)}}}
	res, idx, err := r.propose(ctx, "bootstrap RBAC", cmd)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.BootstrapRBACResponse{Header: r.s.header(idx), Changes: apiChanges(res.Changes), RbacRevision: res.Revision}, nil
}

func (r *rbacService) DeleteRBAC(ctx context.Context, req *tokenstorev1.DeleteRBACRequest) (*tokenstorev1.DeleteRBACResponse, error) {
	if len(req.GetRefs()) == 0 {
		return nil, invalid("no objects to delete given")
	}
	if len(req.GetRefs()) > maxRBACRefs {
		return nil, invalid("at most %d objects per delete", maxRBACRefs)
	}
	del := &raftstorev1.DeleteRBAC{IgnoreMissing: req.GetIgnoreMissing()}
	for _, ref := range req.GetRefs() {
		k, err := refKey(ref)
		if err != nil {
			return nil, err
		}
		del.Refs = append(del.Refs, &raftstorev1.RBACRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name})
	}
	res, idx, err := r.propose(ctx, "delete RBAC objects", &raftstorev1.Command{Op: &raftstorev1.Command_DeleteRbac{DeleteRbac: del}})
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.DeleteRBACResponse{Header: r.s.header(idx), Changes: apiChanges(res.Changes), RbacRevision: res.Revision}, nil
}

// view admits a read and returns the RBAC view to answer it from.
func (r *rbacService) view(ctx context.Context, c tokenstorev1.ReadConsistency) (*rbac.View, error) {
	if err := r.s.readGate(ctx, c); err != nil {
		r.s.metrics.unavailable.Inc()
		return nil, err
	}
	return r.s.state.RBAC().View(), nil
}

func (r *rbacService) GetRBAC(ctx context.Context, req *tokenstorev1.GetRBACRequest) (*tokenstorev1.GetRBACResponse, error) {
	k, err := refKey(req.GetRef())
	if err != nil {
		return nil, err
	}
	v, err := r.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	o := v.Get(k)
	if o == nil {
		return nil, status.Errorf(codes.NotFound, "%s not found", k)
	}
	return &tokenstorev1.GetRBACResponse{Header: r.s.header(v.Applied), Object: apiObject(o), RbacRevision: v.Revision()}, nil
}

func (r *rbacService) ListRBAC(ctx context.Context, req *tokenstorev1.ListRBACRequest) (*tokenstorev1.ListRBACResponse, error) {
	for _, k := range req.GetKinds() {
		if !validKind(k) {
			return nil, invalid("kind %q: want one of Role, ClusterRole, RoleBinding, ClusterRoleBinding", k)
		}
	}
	v, err := r.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	resp := &tokenstorev1.ListRBACResponse{Header: r.s.header(v.Applied), RbacRevision: v.Revision()}
	for _, o := range v.List(req.GetKinds(), req.GetNamespace()) {
		resp.Objects = append(resp.Objects, apiObject(o))
	}
	return resp, nil
}

func (r *rbacService) ListRules(ctx context.Context, req *tokenstorev1.ListRulesRequest) (*tokenstorev1.ListRulesResponse, error) {
	if err := validateSubjectInfo(req.GetUser()); err != nil {
		return nil, err
	}
	v, err := r.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	user := req.GetUser().GetUsername()
	groups := rbac.ImpliedGroups(user, req.GetUser().GetGroups())
	rules, errs := v.RulesFor(user, groups, req.GetNamespace())
	d := rbac.Decision{Errors: errs}
	resp := &tokenstorev1.ListRulesResponse{Header: r.s.header(v.Applied), RbacRevision: v.Revision(), Groups: groups,
		Incomplete: len(errs) > 0, EvaluationError: d.EvaluationError()}
	for _, sr := range rules {
		resp.Rules = append(resp.Rules, &tokenstorev1.SourcedRule{Rule: apiRule(sr.Rule), Binding: apiRef(sr.Binding.Key), Role: apiRef(sr.RoleKey)})
	}
	return resp, nil
}

func apiRule(r rbacv1.PolicyRule) *tokenstorev1.PolicyRule {
	return &tokenstorev1.PolicyRule{Verbs: r.Verbs, ApiGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames, NonResourceUrls: r.NonResourceURLs}
}

// validateSubjectInfo checks who a question is about: a username or a
// group, and no field longer than a name can be.
func validateSubjectInfo(u *tokenstorev1.UserInfo) error {
	if u.GetUsername() == "" && len(u.GetGroups()) == 0 {
		return invalid("at least one of user.username and user.groups is required")
	}
	if len(u.GetUsername()) > maxAuthzField || len(u.GetGroups()) > maxGroups {
		return invalid("user.username must be at most %d bytes and user.groups at most %d", maxAuthzField, maxGroups)
	}
	for _, g := range u.GetGroups() {
		if len(g) > maxAuthzField {
			return invalid("group %q is longer than %d bytes", g, maxAuthzField)
		}
	}
	return nil
}

// authzAnswer is a decision and the applied index of the view it came
// from.
type authzAnswer struct {
	rbac.Decision
	groups   []string
	revision uint64
}

// authorize is the one authorization path (see the top of this file).
// a.Groups are the groups asked for; the implied ones are added here.
func (r *rbacService) authorize(ctx context.Context, a rbac.Attributes, c tokenstorev1.ReadConsistency, path string) (authzAnswer, error) {
	v, err := r.view(ctx, c)
	if err != nil {
		return authzAnswer{}, err
	}
	a.Groups = rbac.ImpliedGroups(a.User, a.Groups)
	d := v.Authorize(&a)
	decision := "no_opinion"
	if d.Allowed {
		decision = "allowed"
	}
	r.decisions.WithLabelValues(path, decision).Inc()
	return authzAnswer{Decision: d, groups: a.Groups, revision: v.Applied}, nil
}

// Authorize answers as Kubernetes' RBAC authorizer would. Not allowed is
// an answer ("no opinion"), not an error.
func (a *authService) Authorize(ctx context.Context, req *tokenstorev1.AuthorizeRequest) (*tokenstorev1.AuthorizeResponse, error) {
	if err := validateSubjectInfo(req.GetUser()); err != nil {
		return nil, err
	}
	ra, na := req.GetResourceAttributes(), req.GetNonResourceAttributes()
	if (ra == nil) == (na == nil) {
		return nil, invalid("exactly one of resource_attributes and non_resource_attributes is required")
	}
	attrs := rbac.Attributes{User: req.GetUser().GetUsername(), Groups: req.GetUser().GetGroups()}
	if ra != nil {
		attrs.ResourceRequest = true
		attrs.Namespace, attrs.Verb, attrs.APIGroup, attrs.Resource, attrs.Subresource, attrs.Name =
			ra.GetNamespace(), ra.GetVerb(), ra.GetGroup(), ra.GetResource(), ra.GetSubresource(), ra.GetName()
	} else {
		attrs.Verb, attrs.Path = na.GetVerb(), na.GetPath()
	}
	ans, err := a.s.rbac.authorize(ctx, attrs, req.GetConsistency(), "grpc")
	if err != nil {
		return nil, err
	}
	resp := &tokenstorev1.AuthorizeResponse{
		Header:          a.s.header(ans.revision),
		Allowed:         ans.Allowed,
		Reason:          ans.Reason(),
		EvaluationError: ans.EvaluationError(),
		RbacRevision:    ans.Decision.Revision,
		Groups:          ans.groups,
	}
	if ans.Allowed {
		resp.Binding, resp.Role = apiRef(ans.Binding.Key), apiRef(ans.RoleKey)
		sub := ans.Subject
		if sub.Kind == rbacv1.ServiceAccountKind && sub.Namespace == "" {
			sub.Namespace = ans.Binding.Key.Namespace
		}
		resp.Subject = &tokenstorev1.RBACSubject{Kind: sub.Kind, Name: sub.Name, Namespace: sub.Namespace}
	}
	return resp, nil
}

// webhookAuthorize answers SubjectAccessReviews through the shared path at
// the member's default read consistency, within --request-timeout.
func (r *rbacService) webhookAuthorize(ctx context.Context, q webhook.AccessReview) (webhook.AccessAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.RequestTimeout)
	defer cancel()
	a := rbac.Attributes{User: q.User, Groups: q.Groups}
	if ra := q.Resource; ra != nil {
		a.ResourceRequest = true
		a.Namespace, a.Verb, a.APIGroup, a.Resource, a.Subresource, a.Name = ra.Namespace, ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Name
	} else {
		a.Verb, a.Path = q.NonResource.Verb, q.NonResource.Path
	}
	ans, err := r.authorize(ctx, a, tokenstorev1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, "subjectaccessreview")
	if err != nil {
		return webhook.AccessAnswer{}, errors.New(status.Convert(err).Message())
	}
	return webhook.AccessAnswer{
		Allowed:         ans.Allowed,
		Reason:          ans.Reason(),
		EvaluationError: ans.EvaluationError(),
		Revision:        ans.revision,
		RBACRevision:    ans.Decision.Revision,
		Member:          r.s.cfg.Name,
	}, nil
}

// handlers are the SubjectAccessReview webhook's routes. kube-apiserver
// posts to the URL its webhook kubeconfig names, in the version it was
// configured with (v1beta1 unless told otherwise); both paths take both.
func (r *rbacService) handlers() map[string]http.Handler {
	h := webhook.NewAccessReview(webhook.AccessReviewConfig{
		Authorize:    r.webhookAuthorize,
		MaxBodyBytes: int64(r.s.cfg.MaxRequestBytes),
		Observe: func(code int) {
			r.s.metrics.authx.webhook.WithLabelValues("subjectaccessreviews", strconv.Itoa(code)).Inc()
		},
	})
	return map[string]http.Handler{
		"POST /apis/authorization.k8s.io/v1/subjectaccessreviews":      h,
		"POST /apis/authorization.k8s.io/v1beta1/subjectaccessreviews": h,
	}
}
