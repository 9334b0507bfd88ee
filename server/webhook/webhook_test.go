package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// fakeAuth accepts "good" as alice, answers "busy" and "down" with errors,
// and refuses anything else; it records the last review.
type fakeAuth struct{ last Review }

func (f *fakeAuth) authenticate(_ context.Context, r Review) (Answer, error) {
	f.last = r
	switch r.Token {
	case "good":
		return Answer{Authenticated: true, User: authenticationv1.UserInfo{Username: "alice", UID: "1", Groups: []string{"dev"},
			Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}, Audiences: r.Audiences, Revision: 7, Member: "n1"}, nil
	case "busy":
		return Answer{}, &Overloaded{RetryAfter: 1500 * time.Millisecond, Reason: "slots busy"}
	case "down":
		return Answer{}, errors.New("member n1 cannot serve reads")
	}
	return Answer{Error: "unknown token or wrong secret", Revision: 7, Member: "n1"}, nil
}

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/apis/authentication.k8s.io/v1/tokenreviews", strings.NewReader(body)))
	return rec
}

func review(version, token string, auds ...string) string {
	b, _ := json.Marshal(map[string]any{"apiVersion": version, "kind": "TokenReview", "spec": map[string]any{"token": token, "audiences": auds}})
	return string(b)
}

// answer decodes a 200 answer; v1 and v1beta1 have the same JSON shape.
func answer(t *testing.T, rec *httptest.ResponseRecorder) authenticationv1.TokenReview {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var tr authenticationv1.TokenReview
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestAnswersInTheVersionAsked(t *testing.T) {
	f := &fakeAuth{}
	var codes []int
	h := New(Config{Authenticate: f.authenticate, Observe: func(c int) { codes = append(codes, c) }})
	for _, v := range []string{VersionV1, VersionV1beta1} {
		tr := answer(t, post(t, h, review(v, "good", "api", "x")))
		if tr.APIVersion != v || tr.Kind != "TokenReview" || !tr.Status.Authenticated || tr.Status.User.Username != "alice" ||
			tr.Status.User.UID != "1" || !slices.Equal(tr.Status.User.Extra["k"], []string{"v"}) || !slices.Equal(tr.Status.Audiences, []string{"api", "x"}) {
			t.Errorf("%s: answer %+v", v, tr)
		}
		if tr.Spec.Token != "" {
			t.Errorf("%s: the token was echoed back", v)
		}
		refused := answer(t, post(t, h, review(v, "bad")))
		if refused.APIVersion != v || refused.Status.Authenticated || refused.Status.Error != "unknown token or wrong secret" {
			t.Errorf("%s: refusal %+v", v, refused)
		}
	}
	rec := post(t, h, review("", "good"))
	if tr := answer(t, rec); tr.APIVersion != VersionV1 {
		t.Errorf("no apiVersion answered as %q, want the default v1", tr.APIVersion)
	}
	if rec.Header().Get("X-Tokenstore-Revision") != "7" || rec.Header().Get("X-Tokenstore-Member") != "n1" {
		t.Errorf("headers %v", rec.Header())
	}
	if !slices.Equal(codes, []int{200, 200, 200, 200, 200}) {
		t.Errorf("observed %v", codes)
	}
}

func TestErrorsAreStatusCodes(t *testing.T) {
	f := &fakeAuth{}
	h := New(Config{Authenticate: f.authenticate, MaxBodyBytes: 512})
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"not json", "{", http.StatusBadRequest, "not a TokenReview"},
		{"wrong kind", `{"kind":"SubjectAccessReview","spec":{"token":"good"}}`, http.StatusBadRequest, `kind "SubjectAccessReview"`},
		{"unknown version", review("authentication.k8s.io/v2", "good"), http.StatusBadRequest, `apiVersion "authentication.k8s.io/v2"`},
		{"too large", review(VersionV1, strings.Repeat("a", 600)), http.StatusRequestEntityTooLarge, "larger than 512 bytes"},
		{"down", review(VersionV1, "down"), http.StatusServiceUnavailable, "cannot serve reads"},
		{"busy", review(VersionV1, "busy"), http.StatusTooManyRequests, "slots busy"},
	} {
		rec := post(t, h, c.body)
		if rec.Code != c.code || !strings.Contains(statusMessage(t, rec), c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, rec.Code, rec.Body, c.code, c.want)
		}
		if c.code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") != "2" {
			t.Errorf("busy: Retry-After %q, want 2 (seconds, rounded up)", rec.Header().Get("Retry-After"))
		}
	}
}

func TestRancherVariant(t *testing.T) {
	f := &fakeAuth{}
	h := New(Config{Authenticate: f.authenticate, DefaultVersion: VersionV1beta1, Rancher: true})
	// Rancher's kube-api-auth body: kind and spec.token, apiVersion as
	// kube-apiserver sends it or not at all.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/authenticate", strings.NewReader(`{"kind":"TokenReview","spec":{"token":"ext/good"}}`)))
	tr := answer(t, rec)
	if tr.APIVersion != VersionV1beta1 || !tr.Status.Authenticated || f.last.Token != "good" {
		t.Errorf("answer %+v for token %q", tr, f.last.Token)
	}
	body, _ := io.ReadAll(strings.NewReader(rec.Body.String()))
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["kind"] != "TokenReview" || raw["status"].(map[string]any)["user"].(map[string]any)["username"] != "alice" {
		t.Errorf("Rancher shape: %s", body)
	}
}
