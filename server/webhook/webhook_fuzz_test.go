package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// fuzzMaxBody keeps the fuzzer's inputs around the body limit, so the 413
// path is exercised too.
const fuzzMaxBody = 4 << 10

// recordingAuth accepts every token it is asked about (as "fuzz-user"),
// counts the questions and keeps the last.
type recordingAuth struct {
	calls int
	last  Review
}

func (a *recordingAuth) authenticate(_ context.Context, r Review) (Answer, error) {
	a.calls++
	a.last = r
	return Answer{Authenticated: len(r.Token)%2 == 0, User: authenticationv1.UserInfo{Username: "fuzz-user"},
		Audiences: r.Audiences, Error: "refused", Revision: 1, Member: "n1"}, nil
}

// FuzzTokenReview posts any body to the TokenReview handler and to the
// Rancher /v1/authenticate handler and checks the contract with
// kube-apiserver: 200, 400 or 413, never a panic; a 200 answers in the
// apiVersion asked (v1beta1 by default for Rancher), asks the
// Authenticator exactly once with the spec's token (without Rancher's
// "ext/" prefix), and never echoes the spec (it holds the token). Posting
// the review the Authenticator saw, re-encoded, asks the same question
// again (decode -> encode -> decode).
func FuzzTokenReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"token-abc:abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst","audiences":["api"]}}`), false)
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"x"}}`), false)
	f.Add([]byte(`{"spec":{"token":"ext/token-abc:secret"}}`), true)
	f.Add([]byte(`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":""},"status":{"authenticated":true}}`), true)
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview"}`), false)
	f.Add([]byte(`{"kind":"SubjectAccessReview"}`), false)
	f.Add([]byte(`{"spec":{"token":7}}`), false)
	f.Add([]byte(`[]`), false)
	f.Add([]byte(`{"spec":{"token":"`+strings.Repeat("a", fuzzMaxBody)+`"}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, rancher bool) {
		auth := &recordingAuth{}
		cfg := Config{Authenticate: auth.authenticate, MaxBodyBytes: fuzzMaxBody}
		wantDefault := VersionV1
		if rancher {
			cfg.Rancher, cfg.DefaultVersion, wantDefault = true, VersionV1beta1, VersionV1beta1
		}
		h := New(cfg)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if auth.calls != 0 {
				t.Fatalf("status %d, yet the Authenticator was asked", rec.Code)
			}
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Fatalf("status %d without a reason", rec.Code)
			}
			if rec.Code == http.StatusRequestEntityTooLarge && len(body) <= fuzzMaxBody {
				t.Fatalf("413 for %d bytes, limit %d", len(body), fuzzMaxBody)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if auth.calls != 1 {
			t.Fatalf("the Authenticator was asked %d times", auth.calls)
		}
		var req request
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("answered 200 to a body that is not JSON: %v", err)
		}
		wantTok := req.Spec.Token
		if rancher {
			wantTok = strings.TrimPrefix(wantTok, "ext/")
		}
		if auth.last.Token != wantTok || !slices.Equal(auth.last.Audiences, req.Spec.Audiences) {
			t.Fatalf("asked about token %q audiences %q, the body says %q %q", auth.last.Token, auth.last.Audiences, wantTok, req.Spec.Audiences)
		}
		wantVersion := req.APIVersion
		if wantVersion == "" {
			wantVersion = wantDefault
		}
		var tm struct{ APIVersion, Kind string }
		_ = json.Unmarshal(rec.Body.Bytes(), &tm)
		if tm.APIVersion != wantVersion || tm.Kind != kindTokenReview {
			t.Fatalf("answered %s %s, want %s TokenReview", tm.APIVersion, tm.Kind, wantVersion)
		}
		var answered authenticationv1.TokenReview
		if err := json.Unmarshal(rec.Body.Bytes(), &answered); err != nil {
			t.Fatalf("answer is not a TokenReview: %v", err)
		}
		if answered.Spec.Token != "" || len(answered.Spec.Audiences) > 0 {
			t.Fatal("the answer echoes the spec, which holds the token")
		}

		// decode -> encode -> decode: the same question again.
		first := auth.last
		again, _ := json.Marshal(authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: first.Token, Audiences: first.Audiences}})
		plain := &recordingAuth{}
		rec = httptest.NewRecorder()
		New(Config{Authenticate: plain.authenticate, MaxBodyBytes: 2 * fuzzMaxBody}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(again)))
		if rec.Code != http.StatusOK || plain.last.Token != first.Token || !reflect.DeepEqual(emptyNil(plain.last.Audiences), emptyNil(first.Audiences)) {
			t.Fatalf("re-encoded review: status %d, token %q audiences %q; first %q %q", rec.Code, plain.last.Token, plain.last.Audiences, first.Token, first.Audiences)
		}
	})
}

func emptyNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
