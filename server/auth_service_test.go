package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
	authenticationv1 "k8s.io/api/authentication/v1"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
	"github.com/tokenstore/tokenstore/server/token"
)

// reviewOver posts a TokenReview to path and decodes the 200 answer.
func reviewOver(t *testing.T, base, path, version, tok string, auds ...string) authenticationv1.TokenReview {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"apiVersion": version, "kind": "TokenReview", "spec": map[string]any{"token": tok, "audiences": auds}})
	resp, err := http.Post(base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d", path, resp.StatusCode)
	}
	var tr authenticationv1.TokenReview
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if tr.APIVersion != version {
		t.Errorf("asked %s, answered %s", version, tr.APIVersion)
	}
	return tr
}

// TestWebhookAndGRPCGiveTheSameAnswers checks the shared path: every kind
// of token answered through gRPC, TokenReview v1 and v1beta1 and the
// Rancher endpoint, with the same outcome, user, audiences and message.
func TestWebhookAndGRPCGiveTheSameAnswers(t *testing.T) {
	s, conn := startSolo(t, t.TempDir())
	web := httptest.NewServer(s.httpHandler())
	defer web.Close()
	tokens := tokenstorev1.NewTokenServiceClient(conn)
	auth := tokenstorev1.NewAuthServiceClient(conn)
	ctx := context.Background()

	create := func(auds ...string) *tokenstorev1.CreateTokenResponse {
		t.Helper()
		r, err := tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice", Groups: []string{"dev"},
			Extra: map[string]*tokenstorev1.ExtraValue{"team": {Values: []string{"infra"}}}}, Audiences: auds})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	plain, bound, revoked := create(), create("vault", "api"), create()
	if got := bound.GetToken().GetAudiences(); !slices.Equal(got, []string{"vault", "api"}) {
		t.Errorf("created audiences %v", got)
	}
	if _, err := tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: revoked.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	secret := "jv6xs2wgmg7dtnc8g8ntpzrcfjfxs2lfhtq8cn4kbkwbl6v8k4vxgw"
	h, err := rancher.NewHash(rancher.FormatSHA3, secret)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := tokens.ImportTokens(ctx, &tokenstorev1.ImportTokensRequest{Tokens: []*tokenstorev1.ImportedToken{
		{Id: "kubeconfig-u-x", User: &tokenstorev1.UserInfo{Username: "u-x", Groups: []string{"g"}}, RancherHash: h, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))},
	}})
	if err != nil || len(imp.GetImported()) != 1 || imp.GetImported()[0].GetHashFormat() != tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SHA3 {
		t.Fatalf("import: %v %v", imp, err)
	}

	for _, c := range []struct {
		name, token string
		auds        []string
		ok          bool
		wantAuds    []string
		msg         string
	}{
		{"valid", plain.GetBearerToken(), nil, true, nil, ""},
		{"valid, audiences echoed", plain.GetBearerToken(), []string{"x"}, true, []string{"x"}, ""},
		{"bound, overlap", bound.GetBearerToken(), []string{"other", "api"}, true, []string{"api"}, ""},
		{"bound, none asked", bound.GetBearerToken(), nil, true, []string{"vault", "api"}, ""},
		{"bound, no overlap", bound.GetBearerToken(), []string{"other"}, false, nil, "token is not valid for any of the requested audiences"},
		{"revoked", revoked.GetBearerToken(), nil, false, nil, "token revoked"},
		{"unknown", "token-nosuch:abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst", nil, false, nil, "unknown token or wrong secret"},
		// A JWT goes to the OIDC issuers (none configured here).
		{"JWT of no configured issuer", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", nil, false, nil, `JWT issuer "" is not a configured OIDC issuer`},
		{"malformed", "notatoken", nil, false, nil, `malformed token: not of the form "<id>:<secret>": no ':' separator`},
		{"rancher", "kubeconfig-u-x:" + secret, nil, true, nil, ""},
	} {
		g, err := auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: c.token, Audiences: c.auds})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g.GetAuthenticated() != c.ok || !slices.Equal(g.GetAudiences(), c.wantAuds) || g.GetMessage() != c.msg {
			t.Errorf("%s: gRPC answered %v", c.name, g)
		}
		for _, v := range []struct{ path, version string }{
			{"/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1"},
			{"/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1beta1"},
			{"/v1/authenticate", "authentication.k8s.io/v1beta1"},
		} {
			tr := reviewOver(t, web.URL, v.path, v.version, c.token, c.auds...)
			st := tr.Status
			if st.Authenticated != c.ok || !slices.Equal(st.Audiences, c.wantAuds) || st.Error != c.msg ||
				st.User.Username != g.GetUser().GetUsername() || !slices.Equal(st.User.Groups, g.GetUser().GetGroups()) {
				t.Errorf("%s over %s %s: %+v, gRPC said %v", c.name, v.path, v.version, st, g)
			}
			if c.name == "valid" && !slices.Equal(st.User.Extra["team"], []string{"infra"}) {
				t.Errorf("extra lost: %+v", st.User)
			}
		}
	}

	// The import is refused as a whole for a bad hash, and for an existing
	// id unless asked to skip it.
	_, err = tokens.ImportTokens(ctx, &tokenstorev1.ImportTokensRequest{Tokens: []*tokenstorev1.ImportedToken{{Id: "t-bad", User: &tokenstorev1.UserInfo{Username: "u"}, RancherHash: "$2:nope"}}})
	if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `token "t-bad": rancher_hash`) {
		t.Errorf("bad hash: %v", err)
	}
	again := &tokenstorev1.ImportTokensRequest{Tokens: []*tokenstorev1.ImportedToken{{Id: "kubeconfig-u-x", User: &tokenstorev1.UserInfo{Username: "u"}, RancherHash: h}}}
	if _, err := tokens.ImportTokens(ctx, again); code(err) != codes.AlreadyExists {
		t.Errorf("existing id: %v", err)
	}
	again.SkipExisting = true
	if r, err := tokens.ImportTokens(ctx, again); err != nil || !slices.Equal(r.GetSkippedIds(), []string{"kubeconfig-u-x"}) {
		t.Errorf("skip existing: %v %v", r, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestMalformedTokensAreCountedAndLoggedSparingly sends many malformed
// tokens at once: every one is counted, by problem, and the log gets one
// line per second at most, with the number it left out.
func TestMalformedTokensAreCountedAndLoggedSparingly(t *testing.T) {
	s, conn := startSolo(t, t.TempDir())
	var logs syncBuffer
	s.metrics.authx.log = &throttledLog{log: slog.New(slog.NewTextHandler(&logs, nil)), every: time.Hour}
	web := httptest.NewServer(s.httpHandler())
	defer web.Close()
	auth := tokenstorev1.NewAuthServiceClient(conn)

	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := auth.Authenticate(context.Background(), &tokenstorev1.AuthenticateRequest{Token: "a:b:c"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		reviewOver(t, web.URL, "/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1", "no-separator-here")
	}
	if got := counterValue(t, s.metrics.authx.malformed[token.ProblemPartCount]); got != 200 {
		t.Errorf("part_count counter %v, want 200", got)
	}
	if got := counterValue(t, s.metrics.authx.malformed[token.ProblemNoSeparator]); got != 20 {
		t.Errorf("no_separator counter %v, want 20", got)
	}
	lines := strings.Count(logs.String(), "refused malformed token")
	if lines != 1 || !strings.Contains(logs.String(), "problem=part_count") || strings.Contains(logs.String(), "a:b:c") {
		t.Errorf("%d log lines, want 1 without the token:\n%s", lines, logs.String())
	}

	// After the interval the next line carries the count it left out.
	s.metrics.authx.log.mu.Lock()
	s.metrics.authx.log.next = time.Time{}
	s.metrics.authx.log.mu.Unlock()
	reviewOver(t, web.URL, "/v1/authenticate", "authentication.k8s.io/v1beta1", "x\x01")
	if !strings.Contains(logs.String(), "suppressed_since_last_line=219") || !strings.Contains(logs.String(), "problem=non_printable") {
		t.Errorf("second line does not count the 219 left out:\n%s", logs.String())
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// BenchmarkTokenReviewHTTP is one TokenReview over HTTP with keep-alive,
// through the whole stack of a one-member cluster: decode, shared
// authentication path, encode.
func BenchmarkTokenReviewHTTP(b *testing.B) {
	dir := b.TempDir()
	s, err := Start(context.Background(), testConfig(dir), quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	web := httptest.NewServer(s.httpHandler())
	defer web.Close()
	ctx := context.Background()
	var created *tokenstorev1.CreateTokenResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		created, err = (&tokenService{s: s}).CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "alice", Groups: []string{"dev"}}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.Fatal(err)
	}
	for s.node.BoundedReadCheck() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	body, _ := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": map[string]any{"token": created.GetBearerToken()}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(web.URL+"/apis/authentication.k8s.io/v1/tokenreviews", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			var tr authenticationv1.TokenReview
			err = json.NewDecoder(resp.Body).Decode(&tr)
			resp.Body.Close()
			if err != nil || !tr.Status.Authenticated {
				b.Errorf("answer %+v, %v", tr.Status, err)
				return
			}
		}
	})
}
