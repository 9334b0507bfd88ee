package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
)

// fakeAuthz allows alice to get pods and /healthz, answers user "down"
// and "busy" with errors, and records the last review.
type fakeAuthz struct{ last AccessReview }

func (f *fakeAuthz) authorize(_ context.Context, r AccessReview) (AccessAnswer, error) {
	f.last = r
	switch r.User {
	case "down":
		return AccessAnswer{}, errors.New("member n1 cannot serve reads")
	case "busy":
		return AccessAnswer{}, &Overloaded{RetryAfter: 300 * time.Millisecond, Reason: "too many requests"}
	}
	ok := r.User == "alice" && (r.Resource != nil && r.Resource.Resource == "pods" || r.NonResource != nil && r.NonResource.Path == "/healthz")
	a := AccessAnswer{Allowed: ok, Revision: 9, RBACRevision: 7, Member: "n2"}
	if ok {
		a.Reason = "allowed by test"
	}
	return a, nil
}

func postSAR(h http.Handler, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", strings.NewReader(body)))
	return rec
}

func TestAccessReviewVersions(t *testing.T) {
	f := &fakeAuthz{}
	h := NewAccessReview(AccessReviewConfig{Authorize: f.authorize})
	// v1 calls the groups "groups", v1beta1 "group".
	for _, c := range []struct{ version, groupsField string }{{AuthzVersionV1, "groups"}, {AuthzVersionV1beta1, "group"}} {
		body := `{"apiVersion":"` + c.version + `","kind":"SubjectAccessReview","spec":{"user":"alice","uid":"u1","` + c.groupsField +
			`":["dev","system:authenticated"],"extra":{"scopes":["a"]},"resourceAttributes":{"namespace":"ns","verb":"get","resource":"pods","subresource":"log","name":"p"}}}`
		rec := postSAR(h, body)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", c.version, rec.Code, rec.Body)
		}
		var raw map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		st := raw["status"].(map[string]any)
		if raw["apiVersion"] != c.version || raw["kind"] != "SubjectAccessReview" || st["allowed"] != true || st["reason"] != "allowed by test" {
			t.Errorf("%s: answer %s", c.version, rec.Body)
		}
		if _, ok := st["denied"]; ok {
			t.Errorf("%s: denied is set: %s", c.version, rec.Body)
		}
		if spec := raw["spec"].(map[string]any); spec[c.groupsField] == nil {
			t.Errorf("%s: spec not echoed in its version's shape: %s", c.version, rec.Body)
		}
		q := f.last
		if q.User != "alice" || q.UID != "u1" || !slices.Equal(q.Groups, []string{"dev", "system:authenticated"}) || !slices.Equal(q.Extra["scopes"], []string{"a"}) ||
			q.Resource == nil || *q.Resource != (authorizationv1.ResourceAttributes{Namespace: "ns", Verb: "get", Resource: "pods", Subresource: "log", Name: "p"}) || q.NonResource != nil {
			t.Errorf("%s: question %+v", c.version, q)
		}
		if rec.Header().Get("X-Tokenstore-Revision") != "9" || rec.Header().Get("X-Tokenstore-RBAC-Revision") != "7" || rec.Header().Get("X-Tokenstore-Member") != "n2" {
			t.Errorf("%s: headers %v", c.version, rec.Header())
		}
	}
	// Not allowed: allowed false, no denied ("no opinion").
	rec := postSAR(h, `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","nonResourceAttributes":{"path":"/healthz","verb":"get"}}}`)
	var sar authorizationv1.SubjectAccessReview
	if err := json.Unmarshal(rec.Body.Bytes(), &sar); err != nil || rec.Code != http.StatusOK || sar.Status.Allowed || sar.Status.Denied ||
		strings.Contains(rec.Body.String(), `"denied"`) || f.last.NonResource.Path != "/healthz" {
		t.Errorf("no opinion: %d %s (%v)", rec.Code, rec.Body, err)
	}
}

func TestAccessReviewErrors(t *testing.T) {
	f := &fakeAuthz{}
	h := NewAccessReview(AccessReviewConfig{Authorize: f.authorize, MaxBodyBytes: 400})
	sar := func(spec string) string {
		return `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":` + spec + `}`
	}
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"not json", "{", http.StatusBadRequest, "not a SubjectAccessReview"},
		{"wrong kind", `{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview"}`, http.StatusBadRequest, `kind "TokenReview"`},
		{"unknown version", `{"apiVersion":"authorization.k8s.io/v2","kind":"SubjectAccessReview"}`, http.StatusBadRequest, `apiVersion "authorization.k8s.io/v2"`},
		{"neither attributes", sar(`{"user":"alice"}`), http.StatusBadRequest, "exactly one of"},
		{"both attributes", sar(`{"user":"alice","resourceAttributes":{"verb":"get"},"nonResourceAttributes":{"verb":"get"}}`), http.StatusBadRequest, "exactly one of"},
		{"nobody", sar(`{"resourceAttributes":{"verb":"get"}}`), http.StatusBadRequest, "at least one of user or group"},
		{"too large", sar(`{"user":"` + strings.Repeat("a", 500) + `"}`), http.StatusRequestEntityTooLarge, "larger than 400 bytes"},
		{"down", sar(`{"user":"down","resourceAttributes":{"verb":"get"}}`), http.StatusServiceUnavailable, "cannot serve reads"},
		{"busy", sar(`{"user":"busy","resourceAttributes":{"verb":"get"}}`), http.StatusTooManyRequests, "too many requests"},
	} {
		rec := postSAR(h, c.body)
		if rec.Code != c.code || !strings.Contains(statusMessage(t, rec), c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, rec.Code, rec.Body, c.code, c.want)
		}
		if c.code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") != "1" {
			t.Errorf("busy: Retry-After %q, want 1", rec.Header().Get("Retry-After"))
		}
	}
}
