package ctl

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
)

// rbacDouble is a TEST DOUBLE of one member's RBACService and
// AuthService.Authorize: fixed answers, recorded requests, no evaluation.
// It proves what the CLI sends and how it renders answers; evaluation is
// tested in server/rbac and against real members in cluster-test.
type rbacDouble struct {
	tokenstorev1.UnimplementedRBACServiceServer
	// objects are what Get and List answer with.
	objects []*tokenstorev1.RBACObject

	mu       sync.Mutex
	requests []proto.Message
}

func (d *rbacDouble) start(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	tokenstorev1.RegisterRBACServiceServer(s, d)
	tokenstorev1.RegisterAuthServiceServer(s, authzDouble{d: d})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return l.Addr().String()
}

func (d *rbacDouble) record(m proto.Message) {
	d.mu.Lock()
	d.requests = append(d.requests, proto.Clone(m))
	d.mu.Unlock()
}

func (d *rbacDouble) last(t *testing.T) proto.Message {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.requests) == 0 {
		t.Fatal("no request received")
	}
	return d.requests[len(d.requests)-1]
}

func (d *rbacDouble) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.requests)
}

func rbacHeader() *tokenstorev1.ResponseHeader {
	return &tokenstorev1.ResponseHeader{Revision: 42, Member: "m1"}
}

func (d *rbacDouble) ApplyRBAC(_ context.Context, req *tokenstorev1.ApplyRBACRequest) (*tokenstorev1.ApplyRBACResponse, error) {
	d.record(req)
	resp := &tokenstorev1.ApplyRBACResponse{Header: rbacHeader(), RbacRevision: 42}
	for _, doc := range req.GetDocuments() {
		objs, err := rbac.Parse(doc)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		for _, o := range objs {
			resp.Changes = append(resp.Changes, &tokenstorev1.RBACChange{Ref: &tokenstorev1.RBACObjectRef{Kind: o.Key.Kind, Namespace: o.Key.Namespace, Name: o.Key.Name},
				Action: tokenstorev1.RBACAction_RBAC_ACTION_CREATED})
		}
	}
	if req.GetPrune() {
		resp.Changes = append(resp.Changes, &tokenstorev1.RBACChange{Ref: &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "old"}, Action: tokenstorev1.RBACAction_RBAC_ACTION_PRUNED})
	}
	return resp, nil
}

func (d *rbacDouble) GetRBAC(_ context.Context, req *tokenstorev1.GetRBACRequest) (*tokenstorev1.GetRBACResponse, error) {
	d.record(req)
	for _, o := range d.objects {
		if proto.Equal(o.GetRef(), req.GetRef()) {
			return &tokenstorev1.GetRBACResponse{Header: rbacHeader(), Object: o, RbacRevision: 40}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "%s/%s not found", req.GetRef().GetKind(), req.GetRef().GetName())
}

func (d *rbacDouble) ListRBAC(_ context.Context, req *tokenstorev1.ListRBACRequest) (*tokenstorev1.ListRBACResponse, error) {
	d.record(req)
	return &tokenstorev1.ListRBACResponse{Header: rbacHeader(), Objects: d.objects, RbacRevision: 40}, nil
}

func (d *rbacDouble) DeleteRBAC(_ context.Context, req *tokenstorev1.DeleteRBACRequest) (*tokenstorev1.DeleteRBACResponse, error) {
	d.record(req)
	resp := &tokenstorev1.DeleteRBACResponse{Header: rbacHeader(), RbacRevision: 43}
	for _, r := range req.GetRefs() {
		resp.Changes = append(resp.Changes, &tokenstorev1.RBACChange{Ref: r, Action: tokenstorev1.RBACAction_RBAC_ACTION_DELETED})
	}
	return resp, nil
}

func (d *rbacDouble) BootstrapRBAC(_ context.Context, req *tokenstorev1.BootstrapRBACRequest) (*tokenstorev1.BootstrapRBACResponse, error) {
	d.record(req)
	return &tokenstorev1.BootstrapRBACResponse{Header: rbacHeader(), RbacRevision: 44, Changes: []*tokenstorev1.RBACChange{
		{Ref: &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "view"}, Action: tokenstorev1.RBACAction_RBAC_ACTION_CONFIGURED}}}, nil
}

// ListRules answers two rules, one of them twice, and a non-resource one.
func (d *rbacDouble) ListRules(_ context.Context, req *tokenstorev1.ListRulesRequest) (*tokenstorev1.ListRulesResponse, error) {
	d.record(req)
	pods := &tokenstorev1.PolicyRule{Verbs: []string{"get", "list"}, ApiGroups: []string{""}, Resources: []string{"pods", "pods/log"}}
	return &tokenstorev1.ListRulesResponse{Header: rbacHeader(), RbacRevision: 40, Groups: []string{"system:authenticated"}, Rules: []*tokenstorev1.SourcedRule{
		{Rule: pods},
		{Rule: &tokenstorev1.PolicyRule{Verbs: []string{"watch", "get"}, ApiGroups: []string{""}, Resources: []string{"pods"}}},
		{Rule: &tokenstorev1.PolicyRule{Verbs: []string{"update"}, ApiGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}}},
		{Rule: &tokenstorev1.PolicyRule{Verbs: []string{"get"}, NonResourceUrls: []string{"/healthz"}}},
	}}, nil
}

// authzDouble allows exactly "alice get pods".
type authzDouble struct {
	tokenstorev1.UnimplementedAuthServiceServer
	d *rbacDouble
}

func (s authzDouble) Authorize(_ context.Context, req *tokenstorev1.AuthorizeRequest) (*tokenstorev1.AuthorizeResponse, error) {
	s.d.record(req)
	resp := &tokenstorev1.AuthorizeResponse{Header: rbacHeader(), RbacRevision: 40, Groups: append(req.GetUser().GetGroups(), "system:authenticated")}
	ra := req.GetResourceAttributes()
	if req.GetUser().GetUsername() == "alice" && ra.GetVerb() == "get" && ra.GetResource() == "pods" {
		resp.Allowed = true
		resp.Reason = `RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to User "alice"`
		resp.Binding = &tokenstorev1.RBACObjectRef{Kind: "ClusterRoleBinding", Name: "b"}
		resp.Role = &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "r"}
		resp.Subject = &tokenstorev1.RBACSubject{Kind: "User", Name: "alice"}
	}
	return resp, nil
}

const testRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`

const testBinding = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b, namespace: dev}
subjects: [{kind: User, name: alice}]
roleRef: {kind: ClusterRole, name: pod-reader}
`

// TestRBACApplyReadsLikeKubectl: files, directories (recursively with
// -R), standard input, multi-document YAML and Lists become one request of
// validated objects; --prune and --expected-revision are sent.
func TestRBACApplyReadsLikeKubectl(t *testing.T) {
	t.Parallel()
	d := &rbacDouble{}
	addr := d.start(t)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("policy/roles.yaml", testRole)
	write("policy/bindings.json", `{"apiVersion":"v1","kind":"List","items":[`+
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"dev"},"subjects":[{"kind":"User","name":"alice"}],"roleRef":{"kind":"ClusterRole","name":"pod-reader"}}]}`)
	write("policy/README.md", "not read")
	write("policy/nested/more.yml", strings.Replace(testRole, "pod-reader", "nested", 1))

	res := cliRun{env: map[string]string{envEndpoints: addr}, stdin: testBinding + "---\n" + strings.Replace(testRole, "pod-reader", "from-stdin", 1),
		args: []string{"rbac", "apply", "-f", filepath.Join(dir, "policy"), "-f", "-", "--prune", "--expected-revision", "7"}}.exec(t)
	if res.code != ExitOK {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	req := d.last(t).(*tokenstorev1.ApplyRBACRequest)
	var names []string
	for _, doc := range req.GetDocuments() {
		objs, err := rbac.Parse(doc)
		if err != nil || len(objs) != 1 {
			t.Fatalf("sent document %s: %v", doc, err)
		}
		names = append(names, objs[0].Key.String())
	}
	if got := strings.Join(names, " "); got != "RoleBinding/dev/b ClusterRole/pod-reader RoleBinding/dev/b ClusterRole/from-stdin" {
		t.Errorf("sent %s", got)
	}
	if !req.GetPrune() || req.GetExpectedRbacRevision() != 7 {
		t.Errorf("request %v", req)
	}
	if !strings.Contains(res.stdout, "ClusterRole/pod-reader created\n") || !strings.Contains(res.stdout, "ClusterRole/old pruned\n") ||
		!strings.Contains(res.stdout, "(RBAC revision 42, revision 42, answered by m1)") {
		t.Errorf("output:\n%s", res.stdout)
	}

	// -R reads subdirectories.
	runCLI(t, addr, "rbac", "apply", "-R", "-f", filepath.Join(dir, "policy"))
	if n := len(d.last(t).(*tokenstorev1.ApplyRBACRequest).GetDocuments()); n != 3 {
		t.Errorf("-R sent %d objects, want 3", n)
	}

	// An invalid object is reported with its file and sends nothing.
	bad := write("bad.yaml", testRole+"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n")
	before := d.count()
	res = runCLI(t, addr, "rbac", "apply", "-f", bad)
	if res.code != ExitFailed || !strings.Contains(res.stderr, "bad.yaml: document 2: Role \"r\" is invalid: metadata.namespace: Required value") || d.count() != before {
		t.Errorf("invalid input: exit %d, stderr %q, %d requests sent", res.code, res.stderr, d.count()-before)
	}
	res = runCLI(t, addr, "rbac", "apply")
	if res.code != ExitUsage {
		t.Errorf("apply without -f: exit %d", res.code)
	}
	res = runCLI(t, addr, "rbac", "apply", "-f", bad, "--dry-run")
	if res.code != ExitFailed {
		t.Errorf("dry run of bad input: exit %d", res.code)
	}
	res = runCLI(t, addr, "rbac", "apply", "-f", filepath.Join(dir, "policy"), "--dry-run", "-o", "json")
	if res.code != ExitOK || d.count() != before || !strings.Contains(res.stdout, `"source"`) {
		t.Errorf("dry run: exit %d, %s, %d requests", res.code, res.stdout, d.count()-before)
	}
}

func TestRBACReadCommands(t *testing.T) {
	t.Parallel()
	role, err := rbac.Parse([]byte(testRole))
	if err != nil {
		t.Fatal(err)
	}
	binding, err := rbac.Parse([]byte(testBinding))
	if err != nil {
		t.Fatal(err)
	}
	d := &rbacDouble{objects: []*tokenstorev1.RBACObject{
		{Ref: &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "pod-reader"}, Json: role[0].JSON()},
		{Ref: &tokenstorev1.RBACObjectRef{Kind: "RoleBinding", Namespace: "dev", Name: "b"}, Json: binding[0].JSON()},
	}}
	addr := d.start(t)

	res := runCLI(t, addr, "rbac", "get", "clusterroles", "pod-reader", "--consistency", "linearizable")
	if res.code != ExitOK || !strings.Contains(res.stdout, "kind: ClusterRole\n") || !strings.Contains(res.stdout, "# RBAC revision 40, revision 42, answered by m1") {
		t.Errorf("get: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	assertRequest(t, d.last(t), &tokenstorev1.GetRBACRequest{Ref: &tokenstorev1.RBACObjectRef{Kind: "ClusterRole", Name: "pod-reader"},
		Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
	if res := runCLI(t, addr, "rbac", "get", "rolebinding", "b"); res.code != ExitUsage || !strings.Contains(res.stderr, "give -n/--namespace") {
		t.Errorf("get namespaced without -n: %d %q", res.code, res.stderr)
	}
	if res := runCLI(t, addr, "rbac", "get", "pod", "x"); res.code != ExitUsage || !strings.Contains(res.stderr, `unknown kind "pod"`) {
		t.Errorf("get unknown kind: %d %q", res.code, res.stderr)
	}
	if res := runCLI(t, addr, "rbac", "get", "role", "missing", "-n", "dev"); res.code != ExitFailed || !strings.Contains(res.stderr, "error: get Role/dev/missing: Role/missing not found") {
		t.Errorf("get missing: %d %q", res.code, res.stderr)
	}

	res = runCLI(t, addr, "rbac", "list", "roles,clusterroles", "-n", "dev")
	if res.code != ExitOK || !strings.Contains(res.stdout, "ClusterRole") || !strings.Contains(res.stdout, "ClusterRole/pod-reader -> User:alice") {
		t.Errorf("list:\n%s%s", res.stdout, res.stderr)
	}
	assertRequest(t, d.last(t), &tokenstorev1.ListRBACRequest{Kinds: []string{"Role", "ClusterRole"}, Namespace: "dev"})

	// export writes YAML that parses back to the same objects.
	res = runCLI(t, addr, "rbac", "export")
	if res.code != ExitOK || !strings.HasPrefix(res.stdout, "# tokenstore RBAC export: RBAC revision 40") {
		t.Fatalf("export: %d\n%s", res.code, res.stdout)
	}
	docs, err := rbac.SplitDocuments([]byte(res.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, doc := range docs {
		objs, err := rbac.Parse(doc)
		if err != nil {
			t.Fatalf("export does not parse back: %v\n%s", err, doc)
		}
		for _, o := range objs {
			got = append(got, string(o.JSON()))
		}
	}
	if len(got) != 2 || got[0] != string(role[0].JSON()) || got[1] != string(binding[0].JSON()) {
		t.Errorf("export round trip: %v", got)
	}
	res = runCLI(t, addr, "rbac", "export", "-o", "json")
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || list.Kind != "List" || len(list.Items) != 2 {
		t.Errorf("export -o json: %v %s", err, res.stdout)
	}
}

func TestRBACWriteCommands(t *testing.T) {
	t.Parallel()
	d := &rbacDouble{}
	addr := d.start(t)
	res := runCLI(t, addr, "rbac", "delete", "rolebinding", "a", "b", "-n", "dev", "--ignore-not-found", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("delete: %d %s", res.code, res.stderr)
	}
	assertRequest(t, d.last(t), &tokenstorev1.DeleteRBACRequest{IgnoreMissing: true, Refs: []*tokenstorev1.RBACObjectRef{
		{Kind: "RoleBinding", Namespace: "dev", Name: "a"}, {Kind: "RoleBinding", Namespace: "dev", Name: "b"}}})
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "changes", "rbacRevision", "revision", "member")
	if res := runCLI(t, addr, "rbac", "delete", "clusterrole", "x", "-n", "dev"); res.code != ExitUsage {
		t.Errorf("cluster-scoped with -n: %d", res.code)
	}
	if res := runCLI(t, addr, "rbac", "delete", "clusterrole"); res.code != ExitUsage {
		t.Errorf("delete without NAME: %d", res.code)
	}
	res = runCLI(t, addr, "rbac", "bootstrap")
	if res.code != ExitOK || res.stdout != "ClusterRole/view configured\n(RBAC revision 44, revision 42, answered by m1)\n" {
		t.Errorf("bootstrap: %d %q", res.code, res.stdout)
	}
}
