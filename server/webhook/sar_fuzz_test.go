package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
)

// recordingAuthz allows every other question it is asked, counts the
// questions and keeps the last.
type recordingAuthz struct {
	calls int
	last  AccessReview
}

func (a *recordingAuthz) authorize(_ context.Context, r AccessReview) (AccessAnswer, error) {
	a.calls++
	a.last = r
	return AccessAnswer{Allowed: a.calls%2 == 1, Reason: "fuzz", Revision: 1, RBACRevision: 1, Member: "n1"}, nil
}

// FuzzSubjectAccessReview posts any body to the SubjectAccessReview
// handler and checks the contract with kube-apiserver: 200, 400 or 413,
// never a panic; a 200 asks the Authorizer exactly once a question with a
// user or group and exactly one of resource and non-resource attributes,
// answers in the apiVersion asked with the spec echoed, and posting that
// answer back asks the same question (decode -> encode -> decode).
func FuzzSubjectAccessReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","groups":["dev"],"uid":"1","extra":{"k":["v"]},"resourceAttributes":{"namespace":"ns","verb":"get","group":"apps","version":"v1","resource":"deployments","subresource":"scale","name":"x"}}}`))
	f.Add([]byte(`{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"user":"bob","group":["ops"],"nonResourceAttributes":{"path":"/healthz","verb":"get"}}}`))
	f.Add([]byte(`{"spec":{"group":["g"],"resourceAttributes":{"verb":"list","resource":"pods","fieldSelector":{"rawSelector":"a=b"}}}}`))
	f.Add([]byte(`{"apiVersion":"authorization.k8s.io/v1","spec":{"user":"a","resourceAttributes":{},"nonResourceAttributes":{}}}`))
	f.Add([]byte(`{"apiVersion":"authorization.k8s.io/v1","spec":{"resourceAttributes":{"verb":"get"}}}`))
	f.Add([]byte(`{"kind":"TokenReview"}`))
	f.Add([]byte(`{"apiVersion":"authorization.k8s.io/v2"}`))
	f.Add([]byte(`{"spec":{"user":"` + strings.Repeat("u", fuzzMaxBody) + `"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		authz := &recordingAuthz{}
		h := NewAccessReview(AccessReviewConfig{Authorize: authz.authorize, MaxBodyBytes: fuzzMaxBody})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if authz.calls != 0 {
				t.Fatalf("status %d, yet the Authorizer was asked", rec.Code)
			}
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Fatalf("status %d without a reason", rec.Code)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		q := authz.last
		if authz.calls != 1 || (q.Resource == nil) == (q.NonResource == nil) || (q.User == "" && len(q.Groups) == 0) {
			t.Fatalf("asked %d times, last %+v", authz.calls, q)
		}
		var in, out struct {
			APIVersion string          `json:"apiVersion"`
			Kind       string          `json:"kind"`
			Spec       json.RawMessage `json:"spec"`
		}
		_ = json.Unmarshal(body, &in)
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
		want := in.APIVersion
		if want == "" {
			want = AuthzVersionV1
		}
		if out.APIVersion != want || out.Kind != kindSubjectAccessReview {
			t.Fatalf("answered %s %s, want %s SubjectAccessReview", out.APIVersion, out.Kind, want)
		}
		if out.APIVersion == AuthzVersionV1 {
			var a authorizationv1.SubjectAccessReview
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Status.Allowed != true {
				t.Fatalf("answer %s: %v", rec.Body, err)
			}
		}

		// The answer, posted back, asks the same question.
		again := &recordingAuthz{}
		rec2 := httptest.NewRecorder()
		NewAccessReview(AccessReviewConfig{Authorize: again.authorize, MaxBodyBytes: 4 * fuzzMaxBody}).
			ServeHTTP(rec2, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(rec.Body.Bytes())))
		q.RemoteAddr, again.last.RemoteAddr = "", ""
		if rec2.Code != http.StatusOK || !reflect.DeepEqual(normal(again.last), normal(q)) {
			t.Fatalf("answer posted back: status %d, asked\n%+v\nfirst asked\n%+v", rec2.Code, again.last, q)
		}
	})
}

// normal makes empty and absent lists and maps compare equal: JSON
// omitempty drops the empty ones on the way back.
func normal(q AccessReview) AccessReview {
	if len(q.Groups) == 0 {
		q.Groups = nil
	}
	if len(q.Extra) == 0 {
		q.Extra = nil
	}
	for k, v := range q.Extra {
		if len(v) == 0 {
			q.Extra[k] = nil
		}
	}
	return q
}
