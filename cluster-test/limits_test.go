package clustertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestOversizeInputIsRefusedAndLosesNothing sends real members input past
// every limit of their listeners (docs/hardening.md): an RBAC apply and a
// token past --max-request-bytes over gRPC, a webhook body past it, headers
// past the HTTP limit, a token past the bearer limit. Each is refused with
// a clear error; nothing of it is stored, and afterwards every member
// still authenticates a token created before, over gRPC and through
// kube-apiserver's webhook client.
func TestOversizeInputIsRefusedAndLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const maxRequest = 256 << 10
	c := newCluster(t, "--max-request-bytes", fmt.Sprint(maxRequest))
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m0 := c.Members[0]
	created, err := m0.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	bearer := created.GetBearerToken()

	// tokenctl rbac apply of ClusterRoles past the request limit: refused
	// by the member, named by tokenctl, nothing applied.
	var y strings.Builder
	y.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := 0; y.Len() < 2*maxRequest; i++ {
		fmt.Fprintf(&y, "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata: {name: big-%d}\n  rules:\n  - {apiGroups: [\"\"], resources: [pods, services, configmaps, secrets], verbs: [get, list, watch]}\n", i)
	}
	rbacFile := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(rbacFile, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := tokenctl(ctx, t, "--endpoints", clientEndpoints(c), "rbac", "apply", "-f", rbacFile)
	if code == 0 || !strings.Contains(errOut, "larger than max") || !strings.Contains(errOut, "--max-request-bytes") {
		t.Errorf("rbac apply of %d bytes: exit %d, stderr %q; want a refusal naming the size limit", y.Len(), code, errOut)
	}
	t.Logf("tokenctl rbac apply of %d bytes: exit %d: %s", y.Len(), code, strings.TrimSpace(errOut))
	list, err := tokenstorev1.NewRBACServiceClient(m0.Conn()).ListRBAC(ctx, &tokenstorev1.ListRBACRequest{
		Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.GetObjects() {
		if strings.HasPrefix(o.GetRef().GetName(), "big-") {
			t.Fatalf("the refused apply stored %s", o.GetRef().GetName())
		}
	}

	// gRPC: a token past the request limit, and one past the bearer limit.
	_, err = m0.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: strings.Repeat("a", 2*maxRequest)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Authenticate with a %d-byte token: %v, want RESOURCE_EXHAUSTED", 2*maxRequest, err)
	}
	r, err := m0.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearer + strings.Repeat("a", 600)})
	if err != nil || r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_MALFORMED || !strings.Contains(r.GetMessage(), "longer than 512 bytes") {
		t.Errorf("Authenticate with a token past 512 bytes: %v %v, want MALFORMED", r, err)
	}

	// HTTP, at every member: a webhook body past the limit (413), headers
	// past the HTTP limit (431).
	hc := c.HTTPClient()
	body, _ := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
		"spec": map[string]any{"token": bearer, "audiences": []string{strings.Repeat("x", 2*maxRequest)}}})
	for _, m := range c.Members {
		for _, route := range []string{"/apis/authentication.k8s.io/v1/tokenreviews", "/v1/authenticate", "/apis/authorization.k8s.io/v1/subjectaccessreviews"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.HTTPURL(route), bytes.NewReader(body))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("POST %s to %s: %v", route, m.Name, err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), fmt.Sprintf("larger than %d bytes", maxRequest)) {
				t.Errorf("POST %s of %d bytes to %s: %d %q, want 413 naming the limit", route, len(body), m.Name, resp.StatusCode, msg)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.HTTPURL("/readyz"), nil)
		req.Header.Set("X-Padding", strings.Repeat("p", 80<<10))
		// Over HTTP/2 Go's client itself refuses headers past the limit the
		// member advertises; HTTP/1.1 sends them, so the member's own
		// refusal is what is tested.
		resp, err := http1Client(c).Do(req)
		if err != nil {
			t.Fatalf("GET /readyz with 80 KiB of headers at %s: %v", m.Name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("80 KiB of headers at %s: status %d, want 431", m.Name, resp.StatusCode)
		}
	}

	// Nothing lost: the token authenticates at every member, over gRPC and
	// through kube-apiserver's webhook client.
	for _, m := range c.Members {
		r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearer, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if err != nil || !r.GetAuthenticated() {
			t.Errorf("after the refusals, gRPC at %s: %v %v", m.Name, r.GetMessage(), err)
		}
		kube := kubeAuthenticator(t, webhookKubeconfig(t, m.Name, m.HTTPURL("/apis/authentication.k8s.io/v1/tokenreviews")), "v1")
		if a := ask(ctx, kube, bearer, nil); !a.OK || a.User != "alice" {
			t.Errorf("after the refusals, TokenReview at %s: %v", m.Name, a)
		}
	}
}

// http1Client is c's HTTP client restricted to HTTP/1.1.
func http1Client(c *harness.Cluster) *http.Client {
	hc := c.HTTPClient()
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return hc
}
