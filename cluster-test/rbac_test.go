package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	authzwebhook "k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	authzmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/server/rbac/rbactest"
)

// rbacctl runs the tokenctl binary against c and returns its stdout; a
// non-zero exit fails the test.
func rbacctl(ctx context.Context, t *testing.T, c *harness.Cluster, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "tokenctl"), append([]string{"--endpoints", clientEndpoints(c), "--timeout", "30s"}, args...)...)
	cmd.Env = c.CtlEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("tokenctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// applyRBAC writes policy to a file and applies it with tokenctl, as an
// operator would, and returns the RBAC revision of the change.
func applyRBAC(ctx context.Context, t *testing.T, c *harness.Cluster, policy string, extra ...string) uint64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rbac.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	out := rbacctl(ctx, t, c, append([]string{"rbac", "apply", "-f", path, "-o", "json"}, extra...)...)
	var res struct {
		RBACRevision uint64 `json:"rbacRevision"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.RBACRevision == 0 {
		t.Fatalf("tokenctl rbac apply output %s (%v)", out, err)
	}
	return res.RBACRevision
}

// caseRequest is a table case as an AuthorizeRequest.
func caseRequest(cs rbactest.Case, consistency tokenstorev1.ReadConsistency) *tokenstorev1.AuthorizeRequest {
	req := &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: cs.User, Groups: cs.Groups}, Consistency: consistency}
	if cs.Path != "" {
		req.NonResourceAttributes = &tokenstorev1.NonResourceAttributes{Verb: cs.Verb, Path: cs.Path}
	} else {
		req.ResourceAttributes = &tokenstorev1.ResourceAttributes{Namespace: cs.Namespace, Verb: cs.Verb, Group: cs.Group,
			Resource: cs.Resource, Subresource: cs.Subresource, Name: cs.ResourceName}
	}
	return req
}

// caseAttributes is a table case as the attributes kube-apiserver hands
// its authorizers.
func caseAttributes(cs rbactest.Case) authorizer.AttributesRecord {
	a := authorizer.AttributesRecord{User: &user.DefaultInfo{Name: cs.User, Groups: cs.Groups}, Verb: cs.Verb}
	if cs.Path != "" {
		a.Path = cs.Path
		return a
	}
	a.ResourceRequest = true
	a.Namespace, a.APIGroup, a.APIVersion, a.Resource, a.Subresource, a.Name = cs.Namespace, cs.Group, "v1", cs.Resource, cs.Subresource, cs.ResourceName
	return a
}

func rbacRef(r *tokenstorev1.RBACObjectRef) string {
	if r == nil {
		return ""
	}
	if r.GetNamespace() == "" {
		return r.GetKind() + "/" + r.GetName()
	}
	return r.GetKind() + "/" + r.GetNamespace() + "/" + r.GetName()
}

// kubeAuthorizer is the webhook authorizer kube-apiserver builds from an
// --authorization-webhook-config-file kubeconfig, for one member and
// SubjectAccessReview version, with a failure policy of NoOpinion.
func kubeAuthorizer(t *testing.T, kubeconfig, version string) *authzwebhook.WebhookAuthorizer {
	t.Helper()
	restCfg, err := webhookutil.LoadKubeconfig(kubeconfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 3}
	a, err := authzwebhook.New(restCfg, version, time.Millisecond, time.Millisecond, backoff, authorizer.DecisionNoOpinion,
		nil, "tokenstore", authzmetrics.NoopAuthorizerMetrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRBACSameAnswersOnEveryMember applies the policy of rbactest with
// tokenctl and asks every case of its table of every member, over gRPC and
// through the webhook client kube-apiserver uses (SubjectAccessReview v1
// and v1beta1): every answer is Kubernetes' and the same on every member,
// at the same RBAC revision. A member that cannot confirm it is caught up
// answers 503, which the client takes as an error (its failure policy),
// never as a decision.
func TestRBACSameAnswersOnEveryMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, "--max-staleness", "2s")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	rev := applyRBAC(ctx, t, c, rbactest.Policy)
	// A linearizable read at each member waits until it has applied the
	// policy; later bounded reads answer from at least that state.
	for _, m := range c.Members {
		if _, err := m.Auth.Authorize(ctx, caseRequest(rbactest.Cases[0], tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)); err != nil {
			t.Fatalf("linearizable read at %s: %v", m.Name, err)
		}
	}

	for _, cs := range rbactest.Cases {
		var first *tokenstorev1.AuthorizeResponse
		for _, m := range c.Members {
			got, err := m.Auth.Authorize(ctx, caseRequest(cs, tokenstorev1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED))
			if err != nil {
				t.Fatalf("%s at %s: %v", cs.Name, m.Name, err)
			}
			if got.GetAllowed() != cs.Allowed || rbacRef(got.GetBinding()) != cs.Binding || rbacRef(got.GetRole()) != cs.Role ||
				got.GetReason() != cs.Reason || got.GetRbacRevision() != rev {
				t.Errorf("%s at %s: allowed=%v %q %q %q at RBAC revision %d; want %v %q %q %q at %d", cs.Name, m.Name,
					got.GetAllowed(), rbacRef(got.GetBinding()), rbacRef(got.GetRole()), got.GetReason(), got.GetRbacRevision(),
					cs.Allowed, cs.Binding, cs.Role, cs.Reason, rev)
			}
			if got.GetHeader().GetRevision() < rev || got.GetHeader().GetMember() != m.Name {
				t.Errorf("%s at %s: header %v", cs.Name, m.Name, got.GetHeader())
			}
			// Identical on every member, but for which member answered and
			// its applied index.
			got.Header = nil
			if first == nil {
				first = got
			} else if !proto.Equal(got, first) {
				t.Errorf("%s: %s answered %v, %s answered %v", cs.Name, m.Name, got, c.Members[0].Name, first)
			}
		}
	}

	for _, version := range []string{"v1", "v1beta1"} {
		var authz []*authzwebhook.WebhookAuthorizer
		for _, m := range c.Members {
			url := m.HTTPURL("/apis/authorization.k8s.io/" + version + "/subjectaccessreviews")
			authz = append(authz, kubeAuthorizer(t, webhookKubeconfig(t, m.Name+"-authz-"+version, url), version))
		}
		for _, cs := range rbactest.Cases {
			want := authorizer.DecisionNoOpinion
			if cs.Allowed {
				want = authorizer.DecisionAllow
			}
			for i, m := range c.Members {
				d, reason, err := authz[i].Authorize(ctx, caseAttributes(cs))
				if err != nil || d != want || reason != cs.Reason {
					t.Errorf("SubjectAccessReview %s, %s at %s: decision %v reason %q err %v; want %v %q", version, cs.Name, m.Name, d, reason, err, want, cs.Reason)
				}
			}
		}
	}

	// Stop two members: the third cannot confirm it is caught up within
	// --max-staleness and answers 503; the client retries, then applies
	// its failure policy and reports the error.
	a := kubeAuthorizer(t, webhookKubeconfig(t, "lonely", c.Members[2].HTTPURL("/apis/authorization.k8s.io/v1/subjectaccessreviews")), "v1")
	for _, m := range c.Members[:2] {
		if err := c.Pause(m); err != nil {
			t.Fatal(err)
		}
		defer c.Resume(m)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, _, err := a.Authorize(ctx, caseAttributes(rbactest.Cases[0]))
		if err != nil {
			if d != authorizer.DecisionNoOpinion {
				t.Errorf("a member that cannot answer: decision %v, error %v", d, err)
			}
			// What the client saw: 503 with the reason.
			resp, err := c.HTTPClient().Post(c.Members[2].HTTPURL("/apis/authorization.k8s.io/v1/subjectaccessreviews"), "application/json",
				strings.NewReader(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","resourceAttributes":{"verb":"get","resource":"pods"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "cannot serve reads") {
				t.Errorf("a member that cannot answer: HTTP %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a member without a quorum kept answering (decision %v)", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pruneSnapshot is one side of TestRBACPruneUnderLoad: users u-0 ... u-(n-1)
// bound one by one to a role granting verb on resource.
func pruneSnapshot(prefix, resource string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %s-role}
rules: [{apiGroups: [""], resources: [%s], verbs: [get]}]
`, prefix, resource)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %s-%d}
subjects: [{kind: User, name: u-%d}]
roleRef: {kind: ClusterRole, name: %s-role}
`, prefix, i, i, prefix)
	}
	return b.String()
}

// TestRBACPruneUnderLoad replaces one RBAC snapshot by another with
// "tokenctl rbac apply --prune" while clients keep asking every member.
// The old snapshot lets u-i get pods through old-i; the new one lets u-i
// get secrets through new-i and nothing else. Every answer must be wholly
// the old snapshot's or wholly the new one's, as its RBAC revision says:
// the decision, the binding and role it names, and, for a rules listing,
// every rule. No member goes back to the old snapshot once it answered
// from the new one.
func TestRBACPruneUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	const users = 40
	oldRev := applyRBAC(ctx, t, c, pruneSnapshot("old", "pods", users))
	for _, m := range c.Members {
		if _, err := m.Auth.Authorize(ctx, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: "u-0"},
			ResourceAttributes: &tokenstorev1.ResourceAttributes{Verb: "get", Resource: "pods"},
			Consistency:        tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil {
			t.Fatal(err)
		}
	}

	type answer struct {
		member, user, resource string
		allowed                bool
		binding, role          string
		rbacRev, rev           uint64
		rules                  []string // for a rules listing
		list                   bool
	}
	var (
		mu      sync.Mutex
		answers = map[int][]answer{} // by worker, in order
		stop    atomic.Bool
		wg      sync.WaitGroup
		failed  atomic.Int64
	)
	worker := 0
	for _, m := range c.Members {
		conn, err := m.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rbacClient := tokenstorev1.NewRBACServiceClient(conn)
		for k := 0; k < 2; k++ {
			w, m := worker, m
			worker++
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					u := fmt.Sprintf("u-%d", (i*7+w)%users)
					var a answer
					if i%5 == 4 {
						r, err := rbacClient.ListRules(ctx, &tokenstorev1.ListRulesRequest{User: &tokenstorev1.UserInfo{Username: u}})
						if err != nil {
							failed.Add(1)
							continue
						}
						a = answer{member: m.Name, user: u, list: true, rbacRev: r.GetRbacRevision(), rev: r.GetHeader().GetRevision()}
						for _, sr := range r.GetRules() {
							a.rules = append(a.rules, rbacRef(sr.GetBinding())+" "+rbacRef(sr.GetRole())+" "+strings.Join(sr.GetRule().GetResources(), ","))
						}
					} else {
						res := []string{"pods", "secrets"}[i%2]
						r, err := m.Auth.Authorize(ctx, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: u},
							ResourceAttributes: &tokenstorev1.ResourceAttributes{Namespace: "default", Verb: "get", Resource: res}})
						if err != nil {
							failed.Add(1)
							continue
						}
						a = answer{member: m.Name, user: u, resource: res, allowed: r.GetAllowed(), binding: rbacRef(r.GetBinding()),
							role: rbacRef(r.GetRole()), rbacRev: r.GetRbacRevision(), rev: r.GetHeader().GetRevision()}
					}
					mu.Lock()
					answers[w] = append(answers[w], a)
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(500 * time.Millisecond)
	newRev := applyRBAC(ctx, t, c, pruneSnapshot("new", "secrets", users), "--prune")
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	if newRev <= oldRev {
		t.Fatalf("new RBAC revision %d not after the old %d", newRev, oldRev)
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d questions failed", f)
	}
	var sawOld, sawNew int
	for w, as := range answers {
		newSeen := false
		for _, a := range as {
			var idx string
			fmt.Sscanf(a.user, "u-%s", &idx)
			var wantAllowed bool
			var wantBinding, wantRole string
			var wantRules []string
			switch a.rbacRev {
			case oldRev:
				sawOld++
				if newSeen {
					t.Errorf("worker %d at %s: an answer from the old snapshot after one from the new", w, a.member)
				}
				wantAllowed = a.resource == "pods"
				wantBinding, wantRole = "ClusterRoleBinding/old-"+idx, "ClusterRole/old-role"
				wantRules = []string{"ClusterRoleBinding/old-" + idx + " ClusterRole/old-role pods"}
			case newRev:
				sawNew++
				newSeen = true
				wantAllowed = a.resource == "secrets"
				wantBinding, wantRole = "ClusterRoleBinding/new-"+idx, "ClusterRole/new-role"
				wantRules = []string{"ClusterRoleBinding/new-" + idx + " ClusterRole/new-role secrets"}
			default:
				t.Errorf("worker %d at %s: answer at RBAC revision %d, neither the old %d nor the new %d", w, a.member, a.rbacRev, oldRev, newRev)
				continue
			}
			if a.rev < a.rbacRev {
				t.Errorf("worker %d at %s: applied index %d below the RBAC revision %d of its answer", w, a.member, a.rev, a.rbacRev)
			}
			if a.list {
				if !slices.Equal(a.rules, wantRules) {
					t.Errorf("worker %d at %s: rules of %s at RBAC revision %d: %q, want %q", w, a.member, a.user, a.rbacRev, a.rules, wantRules)
				}
				continue
			}
			if !wantAllowed {
				wantBinding, wantRole = "", ""
			}
			if a.allowed != wantAllowed || a.binding != wantBinding || a.role != wantRole {
				t.Errorf("worker %d at %s: %s get %s at RBAC revision %d: allowed=%v by %q %q, want %v by %q %q (a mix of snapshots)",
					w, a.member, a.user, a.resource, a.rbacRev, a.allowed, a.binding, a.role, wantAllowed, wantBinding, wantRole)
			}
		}
	}
	t.Logf("old snapshot at RBAC revision %d, new at %d: %d answers from the old, %d from the new", oldRev, newRev, sawOld, sawNew)
	if sawOld == 0 || sawNew == 0 {
		t.Errorf("the load did not span the replacement (%d old, %d new answers)", sawOld, sawNew)
	}
}
