package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	authorizationv1 "k8s.io/api/authorization/v1"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
	"github.com/tokenstore/tokenstore/server/rbac/rbactest"
)

func policyDocuments(t *testing.T) [][]byte {
	t.Helper()
	docs, err := rbac.SplitDocuments([]byte(rbactest.Policy))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func refString(r *tokenstorev1.RBACObjectRef) string {
	if r == nil {
		return ""
	}
	return rbac.Key{Kind: r.GetKind(), Namespace: r.GetNamespace(), Name: r.GetName()}.String()
}

// authorizeRequest is a table case as an AuthorizeRequest.
func authorizeRequest(c rbactest.Case) *tokenstorev1.AuthorizeRequest {
	req := &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: c.User, Groups: c.Groups}}
	if c.Path != "" {
		req.NonResourceAttributes = &tokenstorev1.NonResourceAttributes{Verb: c.Verb, Path: c.Path}
	} else {
		req.ResourceAttributes = &tokenstorev1.ResourceAttributes{Namespace: c.Namespace, Verb: c.Verb, Group: c.Group,
			Resource: c.Resource, Subresource: c.Subresource, Name: c.ResourceName}
	}
	return req
}

// sarOver posts a table case as a SubjectAccessReview v1 and returns the
// status and the RBAC revision header.
func sarOver(t *testing.T, base string, c rbactest.Case) (authorizationv1.SubjectAccessReviewStatus, uint64) {
	t.Helper()
	sar := authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: c.User, Groups: c.Groups}}
	sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
	if c.Path != "" {
		sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: c.Verb, Path: c.Path}
	} else {
		sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Namespace: c.Namespace, Verb: c.Verb, Group: c.Group,
			Resource: c.Resource, Subresource: c.Subresource, Name: c.ResourceName}
	}
	body, _ := json.Marshal(sar)
	resp, err := http.Post(base+"/apis/authorization.k8s.io/v1/subjectaccessreviews", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SubjectAccessReview: status %d", resp.StatusCode)
	}
	var out authorizationv1.SubjectAccessReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	rev, _ := strconv.ParseUint(resp.Header.Get("X-Tokenstore-RBAC-Revision"), 10, 64)
	return out.Status, rev
}

// askTable asks every case over gRPC and the webhook and checks
// Kubernetes' answer, the same on both, at revision rev.
func askTable(t *testing.T, s *Server, conn *grpc.ClientConn, rev uint64) {
	t.Helper()
	web := httptest.NewServer(s.httpHandler())
	defer web.Close()
	auth := tokenstorev1.NewAuthServiceClient(conn)
	for _, c := range rbactest.Cases {
		resp, err := auth.Authorize(context.Background(), authorizeRequest(c))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if resp.GetAllowed() != c.Allowed || refString(resp.GetBinding()) != c.Binding || refString(resp.GetRole()) != c.Role || resp.GetReason() != c.Reason {
			t.Errorf("%s over gRPC: %v %q %q %q, want %v %q %q %q", c.Name, resp.GetAllowed(), refString(resp.GetBinding()),
				refString(resp.GetRole()), resp.GetReason(), c.Allowed, c.Binding, c.Role, c.Reason)
		}
		if resp.GetRbacRevision() != rev || resp.GetHeader().GetRevision() < rev {
			t.Errorf("%s: revisions %d (applied %d), want RBAC revision %d", c.Name, resp.GetRbacRevision(), resp.GetHeader().GetRevision(), rev)
		}
		st, sarRev := sarOver(t, web.URL, c)
		if st.Allowed != c.Allowed || st.Denied || st.Reason != c.Reason || sarRev != rev {
			t.Errorf("%s over SubjectAccessReview: %+v at %d, want allowed=%v reason %q at %d", c.Name, st, sarRev, c.Allowed, c.Reason, rev)
		}
	}
}

func TestAuthorizeOverGRPCAndWebhook(t *testing.T) {
	dir := t.TempDir()
	s, conn := startSolo(t, dir)
	svc := tokenstorev1.NewRBACServiceClient(conn)
	ctx := context.Background()
	res, err := svc.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Documents: policyDocuments(t)})
	if err != nil {
		t.Fatal(err)
	}
	rev := res.GetRbacRevision()
	if rev == 0 || rev != res.GetHeader().GetRevision() || len(res.GetChanges()) != len(policyDocuments(t)) {
		t.Fatalf("apply: revision %d, header %d, %d changes", rev, res.GetHeader().GetRevision(), len(res.GetChanges()))
	}
	askTable(t, s, conn, rev)

	// After a restart the member answers the same from its state database.
	s.Stop()
	conn.Close()
	s, conn = startSolo(t, dir)
	askTable(t, s, conn, rev)
}

func TestRBACServiceReadsAndWrites(t *testing.T) {
	_, conn := startSolo(t, t.TempDir())
	svc := tokenstorev1.NewRBACServiceClient(conn)
	ctx := context.Background()
	if _, err := svc.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Documents: policyDocuments(t)}); err != nil {
		t.Fatal(err)
	}
	boot, err := svc.BootstrapRBAC(ctx, &tokenstorev1.BootstrapRBACRequest{})
	if err != nil || len(boot.GetChanges()) != 7 {
		t.Fatalf("bootstrap: %v %v", boot.GetChanges(), err)
	}
	get, err := svc.GetRBAC(ctx, &tokenstorev1.GetRBACRequest{Ref: &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "view"}})
	if err != nil || !bytes.Contains(get.GetObject().GetJson(), []byte(`"pods/log"`)) || get.GetRbacRevision() != boot.GetRbacRevision() {
		t.Fatalf("get view: %s %v", get.GetObject().GetJson(), err)
	}
	list, err := svc.ListRBAC(ctx, &tokenstorev1.ListRBACRequest{Kinds: []string{"RoleBinding"}, Namespace: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list.GetObjects() {
		names = append(names, o.GetRef().GetName())
	}
	if !slices.Equal(names, []string{"aaa", "bob-deployer", "bob-pods", "cm", "erin-missing-role", "sa-default-ns", "sa-other-ns"}) {
		t.Errorf("RoleBindings in dev: %v", names)
	}
	rules, err := svc.ListRules(ctx, &tokenstorev1.ListRulesRequest{User: &tokenstorev1.UserInfo{Username: "erin"}, Namespace: "dev"})
	if err != nil || !rules.GetIncomplete() || len(rules.GetRules()) != 1 || !slices.Equal(rules.GetGroups(), []string{"system:authenticated"}) {
		t.Errorf("rules for erin: %v %v", rules, err)
	}

	for _, c := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"nothing to apply", func() error {
			_, err := svc.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Prune: true})
			return err
		}, codes.InvalidArgument},
		{"invalid object", func() error {
			_, err := svc.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Documents: [][]byte{[]byte(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"x"}}`)}})
			return err
		}, codes.InvalidArgument},
		{"stale expected revision", func() error {
			_, err := svc.ApplyRBAC(ctx, &tokenstorev1.ApplyRBACRequest{Documents: policyDocuments(t)[:1], ExpectedRbacRevision: 1})
			return err
		}, codes.Aborted},
		{"get missing", func() error {
			_, err := svc.GetRBAC(ctx, &tokenstorev1.GetRBACRequest{Ref: &tokenstorev1.RBACObjectRef{Kind: "Role", Namespace: "x", Name: "y"}})
			return err
		}, codes.NotFound},
		{"get without namespace", func() error {
			_, err := svc.GetRBAC(ctx, &tokenstorev1.GetRBACRequest{Ref: &tokenstorev1.RBACObjectRef{Kind: "Role", Name: "y"}})
			return err
		}, codes.InvalidArgument},
		{"delete missing", func() error {
			_, err := svc.DeleteRBAC(ctx, &tokenstorev1.DeleteRBACRequest{Refs: []*tokenstorev1.RBACObjectRef{{Kind: "ClusterRole", Name: "nope"}}})
			return err
		}, codes.NotFound},
		{"authorize nobody", func() error {
			_, err := tokenstorev1.NewAuthServiceClient(conn).Authorize(ctx, &tokenstorev1.AuthorizeRequest{ResourceAttributes: &tokenstorev1.ResourceAttributes{Verb: "get"}})
			return err
		}, codes.InvalidArgument},
		{"authorize both kinds", func() error {
			_, err := tokenstorev1.NewAuthServiceClient(conn).Authorize(ctx, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: "a"},
				ResourceAttributes: &tokenstorev1.ResourceAttributes{Verb: "get"}, NonResourceAttributes: &tokenstorev1.NonResourceAttributes{Verb: "get"}})
			return err
		}, codes.InvalidArgument},
	} {
		if got := code(c.call()); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}

	del, err := svc.DeleteRBAC(ctx, &tokenstorev1.DeleteRBACRequest{Refs: []*tokenstorev1.RBACObjectRef{{Kind: "ClusterRoleBinding", Name: "alice-pods"}}})
	if err != nil || len(del.GetChanges()) != 1 || del.GetChanges()[0].GetAction() != tokenstorev1.RBACAction_RBAC_ACTION_DELETED {
		t.Fatalf("delete: %v %v", del, err)
	}
	ans, err := tokenstorev1.NewAuthServiceClient(conn).Authorize(ctx, authorizeRequest(rbactest.Cases[0]))
	if err != nil || ans.GetAllowed() || ans.GetRbacRevision() != del.GetRbacRevision() {
		t.Errorf("after deleting alice's binding: %v %v", ans, err)
	}
}
