package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/scrypt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	tokenwebhook "k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// apiAudience stands for the kube-apiserver's own audience (its
// --api-audiences): the webhook client's implicit audience.
const apiAudience = "https://kubernetes.default.svc.cluster.local"

// webhookKubeconfig writes the kubeconfig kube-apiserver reads with
// --authentication-token-webhook-config-file, pointing at url, and
// returns its path.
func webhookKubeconfig(t *testing.T, name, url string) string {
	t.Helper()
	// kube-apiserver authenticates to the webhooks with a client
	// certificate of the cluster's CA (not an administrator's).
	c := ctlCluster(t)
	cert, key, err := c.IssueClientCert("kube-apiserver", "kube-apiserver")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: tokenstore
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kube-apiserver
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: webhook
  context:
    cluster: tokenstore
    user: kube-apiserver
current-context: webhook
`, url, c.CAFile(), cert, key)
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubeAuthenticator is the webhook token authenticator kube-apiserver
// builds from a kubeconfig, for one member and TokenReview version.
func kubeAuthenticator(t *testing.T, kubeconfig, version string) authenticator.Token {
	t.Helper()
	restCfg, err := webhookutil.LoadKubeconfig(kubeconfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 3}
	a, err := tokenwebhook.New(restCfg, version, authenticator.Audiences{apiAudience}, backoff)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// kubeAnswer is what kube-apiserver takes from one webhook authentication.
type kubeAnswer struct {
	OK        bool
	User      string
	UID       string
	Groups    []string
	Extra     map[string][]string
	Audiences []string
	Err       string
}

func (k kubeAnswer) String() string {
	b, _ := json.Marshal(k)
	return string(b)
}

func ask(ctx context.Context, a authenticator.Token, token string, auds []string) kubeAnswer {
	if auds != nil {
		ctx = authenticator.WithAudiences(ctx, auds)
	}
	resp, ok, err := a.AuthenticateToken(ctx, token)
	var out kubeAnswer
	out.OK = ok
	if err != nil {
		out.Err = err.Error()
	}
	if resp != nil {
		out.User = resp.User.GetName()
		out.UID = resp.User.GetUID()
		out.Groups = resp.User.GetGroups()
		out.Extra = resp.User.GetExtra()
		out.Audiences = resp.Audiences
	}
	return out
}

// rancherSecret makes a secret of Rancher's form: 54 characters of its
// token alphabet.
func rancherSecret(t *testing.T) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 54)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// rancherHash hashes secret as Rancher's hashers do, from the primitives,
// in the given format version.
func rancherHash(t *testing.T, version int, secret string) string {
	t.Helper()
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawStdEncoding.EncodeToString
	salted := append(append([]byte{}, salt...), secret...)
	switch version {
	case 1:
		key, err := scrypt.Key([]byte(secret), salt, 1<<15, 8, 1, 64)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("$1:%x:15:8:1:%s", salt, b64(key))
	case 2:
		sum := sha256.Sum256(salted)
		return fmt.Sprintf("$2:%s:%s", b64(salt), b64(sum[:]))
	case 3:
		sum := sha3.Sum512(salted)
		return fmt.Sprintf("$3:1:%s:%s", b64(salt), b64(sum[:]))
	}
	t.Fatalf("no Rancher hash version %d", version)
	return ""
}

// clientEndpoints is the --endpoints value for tokenctl.
func clientEndpoints(c *harness.Cluster) string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientAddr)
	}
	return strings.Join(out, ",")
}

// importRancher writes the Rancher objects for the three tokens and imports
// them with tokenctl, as an operator would.
func importRancher(ctx context.Context, t *testing.T, c *harness.Cluster, secrets map[string]string) {
	t.Helper()
	var y strings.Builder
	y.WriteString(`apiVersion: v1
kind: List
items:
- apiVersion: cluster.cattle.io/v3
  kind: ClusterUserAttribute
  metadata: {name: u-rancher, namespace: cattle-system}
  groups: ["github_org://42", "system:authenticated"]
  enabled: true
`)
	for i, name := range []string{"kubeconfig-u-scrypt", "kubeconfig-u-sha256", "kubeconfig-u-sha3"} {
		fmt.Fprintf(&y, `- apiVersion: cluster.cattle.io/v3
  kind: ClusterAuthToken
  metadata: {name: %s, namespace: cattle-system}
  userName: u-rancher
  hash: %q
  enabled: true
  expiresAt: %q
`, name, rancherHash(t, i+1, secrets[name]), time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
	}
	path := filepath.Join(t.TempDir(), "clusterauthtokens.yaml")
	if err := os.WriteFile(path, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "tokenctl"), "--endpoints", clientEndpoints(c), "--timeout", "30s",
		"token", "import", "--format", "rancher", path, "-o", "json")
	cmd.Env = c.CtlEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("tokenctl token import: %v\n%s%s", err, out, stderr)
	}
	var res struct {
		Imported []string `json:"imported"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Imported) != 3 {
		t.Fatalf("tokenctl token import output %s (%v)", out, err)
	}
}

// caughtUp waits until every member has applied what the cluster has
// committed, by a linearizable read at each.
func caughtUp(ctx context.Context, t *testing.T, c *harness.Cluster, bearer string) {
	t.Helper()
	for _, m := range c.Members {
		if _, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearer, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil {
			t.Fatalf("linearizable read at %s: %v", m.Name, err)
		}
	}
}

// TestWebhookThroughKubeClient authenticates through the webhook client
// kube-apiserver itself uses, configured from a generated kubeconfig, at
// each of three real members, with TokenReview v1 and v1beta1 and on the
// Rancher kube-api-auth endpoint: every kind of token gets the expected
// answer, and the same answer from every member.
func TestWebhookThroughKubeClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m0 := c.Members[0]
	mk := func(user string, req *tokenstorev1.CreateTokenRequest) *tokenstorev1.CreateTokenResponse {
		t.Helper()
		if req == nil {
			req = &tokenstorev1.CreateTokenRequest{}
		}
		req.User = &tokenstorev1.UserInfo{Username: user, Uid: "uid-" + user, Groups: []string{"dev", "ops"},
			Extra: map[string]*tokenstorev1.ExtraValue{"example.org/team": {Values: []string{"infra"}}}}
		r, err := m0.Tokens.CreateToken(ctx, req)
		if err != nil {
			t.Fatalf("create %s: %v", user, err)
		}
		return r
	}
	valid := mk("alice", nil)
	revoked := mk("bob", nil)
	disabled := mk("carol", nil)
	expired := mk("dave", &tokenstorev1.CreateTokenRequest{Ttl: durationpb.New(time.Millisecond)})
	bound := mk("erin", &tokenstorev1.CreateTokenRequest{Audiences: []string{"vault", apiAudience}})
	boundElsewhere := mk("frank", &tokenstorev1.CreateTokenRequest{Audiences: []string{"vault"}})
	// A token created without a uid: its user's uid is derived from the
	// token id, over gRPC as through the webhooks.
	noUID, err := m0.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "gina"}})
	if err != nil {
		t.Fatal(err)
	}
	noUIDWant := kubeAnswer{OK: true, User: "gina", UID: "tokenstore:token:" + noUID.GetToken().GetId()}
	if r, err := m0.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: noUID.GetBearerToken()}); err != nil || r.GetUser().GetUid() != noUIDWant.UID {
		t.Errorf("gRPC Authenticate of a token without uid: user %v (%v), want uid %q", r.GetUser(), err, noUIDWant.UID)
	}
	if _, err := m0.Tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: revoked.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := c.Members[1].Tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: disabled.GetToken().GetId(), Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, name := range []string{"kubeconfig-u-scrypt", "kubeconfig-u-sha256", "kubeconfig-u-sha3"} {
		secrets[name] = rancherSecret(t)
	}
	importRancher(ctx, t, c, secrets)
	caughtUp(ctx, t, c, valid.GetBearerToken())

	alice := kubeAnswer{OK: true, User: "alice", UID: "uid-alice", Groups: []string{"dev", "ops"}, Extra: map[string][]string{"example.org/team": {"infra"}}}
	// An imported Rancher token has no uid of its own: its user's uid is
	// derived from the token id (state.TokenUID).
	rancherUser := func(name string) kubeAnswer {
		return kubeAnswer{OK: true, User: "u-rancher", UID: "tokenstore:token:" + name, Groups: []string{"github_org://42", "system:authenticated"}}
	}
	withAuds := func(a kubeAnswer, auds ...string) kubeAnswer { a.Audiences = auds; return a }
	refused := func(msg string) kubeAnswer { return kubeAnswer{Err: msg} }
	erin := alice
	erin.User, erin.UID = "erin", "uid-erin"
	cases := []struct {
		name  string
		token string
		auds  []string // nil: the request is not audience-limited
		want  kubeAnswer
	}{
		{"valid", valid.GetBearerToken(), nil, alice},
		{"valid, api audience", valid.GetBearerToken(), []string{apiAudience}, withAuds(alice, apiAudience)},
		{"no uid given", noUID.GetBearerToken(), nil, noUIDWant},
		{"unknown", "token-nosuchtoken:" + strings.Repeat("a", 52), nil, refused("unknown token or wrong secret")},
		{"wrong secret", valid.GetToken().GetId() + ":" + strings.Repeat("b", 52), nil, refused("unknown token or wrong secret")},
		{"revoked", revoked.GetBearerToken(), nil, refused("token revoked")},
		{"expired", expired.GetBearerToken(), nil, refused("token expired")},
		{"disabled", disabled.GetBearerToken(), nil, refused("token disabled")},
		// A JWT goes to the OIDC issuers (none configured here; oidc_test.go).
		{"JWT of no configured issuer", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", nil, refused(`JWT issuer "" is not a configured OIDC issuer`)},
		{"malformed, no separator", "notatoken", nil, refused(`malformed token: not of the form "<id>:<secret>": no ':' separator`)},
		{"malformed parts", "a:b:c", nil, refused(`malformed token: not of the form "<id>:<secret>": more than one ':'`)},
		{"audience match", bound.GetBearerToken(), []string{"other", apiAudience}, withAuds(erin, apiAudience)},
		{"audience mismatch", boundElsewhere.GetBearerToken(), []string{apiAudience}, refused("token is not valid for any of the requested audiences")},
		{"rancher scrypt", "kubeconfig-u-scrypt:" + secrets["kubeconfig-u-scrypt"], nil, rancherUser("kubeconfig-u-scrypt")},
		{"rancher sha256", "kubeconfig-u-sha256:" + secrets["kubeconfig-u-sha256"], nil, rancherUser("kubeconfig-u-sha256")},
		{"rancher sha3", "kubeconfig-u-sha3:" + secrets["kubeconfig-u-sha3"], []string{apiAudience}, withAuds(rancherUser("kubeconfig-u-sha3"), apiAudience)},
		{"rancher scrypt, wrong secret", "kubeconfig-u-scrypt:" + secrets["kubeconfig-u-sha3"], nil, refused("unknown token or wrong secret")},
		{"rancher sha3, wrong secret", "kubeconfig-u-sha3:" + secrets["kubeconfig-u-sha256"], nil, refused("unknown token or wrong secret")},
	}

	type endpoint struct{ path, version string }
	endpoints := []endpoint{
		{"/apis/authentication.k8s.io/v1/tokenreviews", "v1"},
		{"/apis/authentication.k8s.io/v1/tokenreviews", "v1beta1"},
		{"/v1/authenticate", "v1beta1"}, // Rancher kube-api-auth's path
	}
	for _, ep := range endpoints {
		// One kubeconfig and authenticator per member, as each
		// kube-apiserver replica pointed at one member would have.
		var auths []authenticator.Token
		for _, m := range c.Members {
			auths = append(auths, kubeAuthenticator(t, webhookKubeconfig(t, m.Name, m.HTTPURL(ep.path)), ep.version))
		}
		for _, cs := range cases {
			var first kubeAnswer
			for i, m := range c.Members {
				got := ask(ctx, auths[i], cs.token, cs.auds)
				if i == 0 {
					first = got
					if !reflect.DeepEqual(normalize(got), normalize(cs.want)) {
						t.Errorf("%s %s, %s at %s: got %v, want %v", ep.path, ep.version, cs.name, m.Name, got, cs.want)
					}
				} else if !reflect.DeepEqual(normalize(got), normalize(first)) {
					t.Errorf("%s %s, %s: %s answered %v, %s answered %v", ep.path, ep.version, cs.name, m.Name, got, c.Members[0].Name, first)
				}
			}
		}
	}
}

// normalize makes empty and nil collections compare equal.
func normalize(a kubeAnswer) kubeAnswer {
	if len(a.Groups) == 0 {
		a.Groups = nil
	}
	if len(a.Extra) == 0 {
		a.Extra = nil
	}
	if len(a.Audiences) == 0 {
		a.Audiences = nil
	}
	return a
}

// TestRepeatedScryptAuthenticationIsFast: an imported scrypt token costs
// one scrypt per member; repeated authentications are answered from the
// memory of that success.
func TestRepeatedScryptAuthenticationIsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	secret := rancherSecret(t)
	if _, err := c.Members[0].Tokens.ImportTokens(ctx, &tokenstorev1.ImportTokensRequest{Tokens: []*tokenstorev1.ImportedToken{{
		Id: "kubeconfig-u-fast", User: &tokenstorev1.UserInfo{Username: "u-fast"}, RancherHash: rancherHash(t, 1, secret),
		ExpiresAt: timestamppb.New(time.Now().Add(time.Hour)),
	}}}); err != nil {
		t.Fatal(err)
	}
	bearer := "kubeconfig-u-fast:" + secret
	caughtUp(ctx, t, c, bearer)
	m := c.Members[2]
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: bearer})
		if err != nil || !r.GetAuthenticated() {
			t.Fatalf("authentication %d: %v %v", i, r, err)
		}
	}
	per := time.Since(start) / n
	computed := metricSum(t, m, "tokenstore_imported_hash_verifications_computed_total")
	cached := metricSum(t, m, "tokenstore_imported_hash_verifications_cached_total")
	t.Logf("%d authentications at %s: %v each, %v scrypt computations, %v answered from memory", n, m.Name, per, computed, cached)
	// caughtUp already verified once at every member.
	if computed != 1 || cached != n {
		t.Errorf("scrypt computed %v times and remembered %v times at %s, want 1 and %d", computed, cached, m.Name, n)
	}
}

// metricSum reads a member's /metrics and sums the samples of name.
func metricSum(t *testing.T, m *harness.Member, name string) float64 {
	t.Helper()
	resp, err := ctlCluster(t).HTTPClient().Get(m.HTTPURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// logLines counts the lines of a member's log that contain s.
func logLines(t *testing.T, m *harness.Member, s string) int {
	t.Helper()
	b, err := os.ReadFile(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}

// TestMalformedFlood: 1,000 malformed TokenReviews from one client are each
// refused with a reason and counted, and leave a handful of log lines.
func TestMalformedFlood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[1]
	const logLine = "refused malformed token"
	linesBefore := logLines(t, m, logLine)
	countBefore := metricSum(t, m, "tokenstore_malformed_tokens_total")

	bad := []string{"", "no-separator", "a:b:c", "Upper:" + strings.Repeat("a", 40), "id:short", "id:" + strings.Repeat("a", 40) + "\n", strings.Repeat("x", 600)}
	const total, workers = 1000, 8
	client := c.HTTPClient()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				body, _ := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": map[string]any{"token": bad[i%int64(len(bad))]}})
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.HTTPURL("/apis/authentication.k8s.io/v1/tokenreviews"), bytes.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				var tr struct {
					Status struct {
						Authenticated bool   `json:"authenticated"`
						Error         string `json:"error"`
					} `json:"status"`
				}
				err = json.NewDecoder(resp.Body).Decode(&tr)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || tr.Status.Authenticated || !strings.HasPrefix(tr.Status.Error, "malformed token") {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d malformed requests were not refused as malformed with HTTP 200", f, total)
	}
	if got := metricSum(t, m, "tokenstore_malformed_tokens_total") - countBefore; got != total {
		t.Errorf("tokenstore_malformed_tokens_total rose by %v, want %d", got, total)
	}
	// At most one line per second of flood, plus one for a second begun.
	lines := logLines(t, m, logLine) - linesBefore
	limit := 1 + int(elapsed/time.Second)
	t.Logf("%d malformed requests in %v: %d log lines", total, elapsed, lines)
	if lines < 1 || lines > limit {
		t.Errorf("%d log lines for %d malformed requests in %v, want 1 to %d", lines, total, elapsed, limit)
	}
	if b, _ := os.ReadFile(m.LogPath); bytes.Contains(b, []byte("a:b:c")) || bytes.Contains(b, []byte("no-separator")) {
		t.Error("the log repeats a presented token")
	}
}
