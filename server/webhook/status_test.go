package webhook

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	tokenwebhook "k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// wantFailure is what an error answer must carry.
type wantFailure struct {
	code       int
	reason     metav1.StatusReason
	message    string // a part of the message
	retryAfter string // the Retry-After header, "" for none
	close      bool   // Connection: close
	details    int32  // details.retryAfterSeconds, 0 for no details
}

// checkFailure checks that rec is the metav1.Status error answer w.
func checkFailure(t *testing.T, name string, rec *httptest.ResponseRecorder, w wantFailure) {
	t.Helper()
	if rec.Code != w.code {
		t.Errorf("%s: HTTP %d, want %d (%s)", name, rec.Code, w.code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", name, ct)
	}
	if got := rec.Header().Get("Retry-After"); got != w.retryAfter {
		t.Errorf("%s: Retry-After %q, want %q", name, got, w.retryAfter)
	}
	if got := rec.Header().Get("Connection") == "close"; got != w.close {
		t.Errorf("%s: Connection: close is %v, want %v", name, got, w.close)
	}
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%s: body is not a Status: %v: %s", name, err, rec.Body)
	}
	if st.APIVersion != "v1" || st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Code != int32(w.code) || st.Reason != w.reason ||
		!strings.Contains(st.Message, w.message) {
		t.Errorf("%s: Status %+v, want v1 Status Failure code %d reason %s with %q", name, st, w.code, w.reason, w.message)
	}
	var details int32
	if st.Details != nil {
		details = st.Details.RetryAfterSeconds
	}
	if details != w.details || st.Details != nil && w.details == 0 {
		t.Errorf("%s: details %+v, want retryAfterSeconds %d", name, st.Details, w.details)
	}
}

// statusMessage is the message of the Status in rec.
func statusMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Kind != "Status" {
		t.Errorf("body is not a Status (%v): %s", err, rec.Body)
	}
	return st.Message
}

func TestFailuresAreStatus(t *testing.T) {
	tr := New(Config{Authenticate: (&fakeAuth{}).authenticate, MaxBodyBytes: 512})
	sar := NewAccessReview(AccessReviewConfig{Authorize: (&fakeAuthz{}).authorize, MaxBodyBytes: 400})
	sarBody := func(user string) string {
		return `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"` + user + `","resourceAttributes":{"verb":"get"}}}`
	}
	unavailable := wantFailure{code: 503, reason: metav1.StatusReasonServiceUnavailable, message: "member n1 cannot serve reads", retryAfter: "1", close: true}
	for _, c := range []struct {
		name string
		rec  *httptest.ResponseRecorder
		want wantFailure
	}{
		{"TokenReview, cannot answer", post(t, tr, review(VersionV1, "down")), unavailable},
		{"TokenReview, overloaded", post(t, tr, review(VersionV1beta1, "busy")),
			wantFailure{code: 429, reason: metav1.StatusReasonTooManyRequests, message: "overloaded: slots busy", retryAfter: "2", details: 2}},
		{"TokenReview, not one", post(t, tr, "{"), wantFailure{code: 400, reason: metav1.StatusReasonBadRequest, message: "not a TokenReview"}},
		{"TokenReview, too large", post(t, tr, review(VersionV1, strings.Repeat("a", 600))),
			wantFailure{code: 413, reason: metav1.StatusReasonRequestEntityTooLarge, message: "larger than 512 bytes"}},
		{"SubjectAccessReview, cannot answer", postSAR(sar, sarBody("down")), unavailable},
		{"SubjectAccessReview, overloaded", postSAR(sar, sarBody("busy")),
			wantFailure{code: 429, reason: metav1.StatusReasonTooManyRequests, message: "too many requests", retryAfter: "1", details: 1}},
		{"SubjectAccessReview, not one", postSAR(sar, `{"kind":"TokenReview"}`), wantFailure{code: 400, reason: metav1.StatusReasonBadRequest, message: `kind "TokenReview"`}},
	} {
		checkFailure(t, c.name, c.rec, c.want)
	}
	// Answers keep their connection.
	if rec := post(t, tr, review(VersionV1, "good")); rec.Header().Get("Connection") != "" || rec.Header().Get("Retry-After") != "" {
		t.Errorf("an answer carries %v", rec.Header())
	}
}

func TestWriteFailure(t *testing.T) {
	for _, c := range []struct {
		f    Failure
		want wantFailure
	}{
		{Unavailable("shutting down"), wantFailure{code: 503, reason: metav1.StatusReasonServiceUnavailable, message: "shutting down", retryAfter: "1", close: true}},
		{TooMany("busy", 1500*time.Millisecond), wantFailure{code: 429, reason: metav1.StatusReasonTooManyRequests, message: "busy", retryAfter: "2", details: 2}},
		{TooMany("busy", 0), wantFailure{code: 429, reason: metav1.StatusReasonTooManyRequests, message: "busy"}},
		{TooMany("busy", time.Millisecond), wantFailure{code: 429, reason: metav1.StatusReasonTooManyRequests, message: "busy", retryAfter: "1", details: 1}},
		{Failure{Code: 401, Message: "no credentials"}, wantFailure{code: 401, reason: metav1.StatusReasonUnauthorized, message: "no credentials"}},
		{Failure{Code: 403, Message: "not an administrator"}, wantFailure{code: 403, reason: metav1.StatusReasonForbidden, message: "not an administrator"}},
		{Failure{Code: 500, Message: "encode"}, wantFailure{code: 500, reason: metav1.StatusReasonInternalError, message: "encode"}},
	} {
		rec := httptest.NewRecorder()
		if code := WriteFailure(rec, c.f); code != c.want.code {
			t.Errorf("%+v: returned %d", c.f, code)
		}
		checkFailure(t, c.f.Message, rec, c.want)
	}
}

// webhookRESTClient is the REST client kube-apiserver's TokenReview webhook
// builds (k8s.io/apiserver plugin/pkg/authenticator/token/webhook,
// tokenReviewInterfaceFromConfig) for url.
func webhookRESTClient(t *testing.T, cfg *rest.Config) *rest.RESTClient {
	t.Helper()
	local := runtime.NewScheme()
	if err := scheme.AddToScheme(local); err != nil {
		t.Fatal(err)
	}
	gvs := []schema.GroupVersion{authenticationv1.SchemeGroupVersion}
	if err := local.SetVersionPriority(gvs...); err != nil {
		t.Fatal(err)
	}
	gw, err := webhookutil.NewGenericWebhook(local, scheme.Codecs, cfg, gvs, wait.Backoff{})
	if err != nil {
		t.Fatal(err)
	}
	return gw.RestClient
}

// TestKubeClientDecodesFailures: the error kube-apiserver's webhook client
// makes of each error answer (one attempt, client-go's retries off) says
// tokenstore's reason, and its retry rule (DefaultShouldRetry) retries
// exactly the overloaded answer; client-go's own loop retries both 503
// and 429 on their Retry-After (TestKubeClientRetriesOnANewConnection).
func TestKubeClientDecodesFailures(t *testing.T) {
	srv := httptest.NewServer(New(Config{Authenticate: (&fakeAuth{}).authenticate, MaxBodyBytes: 512}))
	defer srv.Close()
	client := webhookRESTClient(t, &rest.Config{Host: srv.URL + "/apis/authentication.k8s.io/v1/tokenreviews", QPS: -1, Timeout: 10 * time.Second})
	for _, c := range []struct {
		token  string
		reason metav1.StatusReason
		msg    string
		retry  bool
	}{
		{"down", metav1.StatusReasonServiceUnavailable, "member n1 cannot serve reads", false},
		{"busy", metav1.StatusReasonTooManyRequests, "overloaded: slots busy", true},
		{strings.Repeat("a", 600), metav1.StatusReasonRequestEntityTooLarge, "request body larger than 512 bytes", false},
	} {
		var out authenticationv1.TokenReview
		err := client.Post().MaxRetries(0).Body(&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: c.token}}).
			Do(context.Background()).Into(&out)
		if err == nil || err.Error() != c.msg || apierrors.ReasonForError(err) != c.reason {
			t.Errorf("%.10s: error %v (reason %s), want %q (reason %s)", c.token, err, apierrors.ReasonForError(err), c.msg, c.reason)
		}
		if got := webhookutil.DefaultShouldRetry(err); got != c.retry {
			t.Errorf("%.10s: DefaultShouldRetry %v, want %v", c.token, got, c.retry)
		}
	}
}

// TestKubeClientRetriesOnANewConnection: kube-apiserver's webhook
// authenticator, over HTTP/2 and TLS as it talks to a member, retries a
// member's Unavailable answer after its Retry-After and on a new
// connection, which is what lets a Service route the retry to another
// member; the second answer gets the user in.
func TestKubeClientRetriesOnANewConnection(t *testing.T) {
	var (
		mu       sync.Mutex
		protos   []string
		answered atomic.Int32
		conns    atomic.Int32
	)
	h := New(Config{Authenticate: func(ctx context.Context, r Review) (Answer, error) {
		if answered.Add(1) == 1 {
			return Answer{}, errors.New("member n1 cannot serve reads")
		}
		return (&fakeAuth{}).authenticate(ctx, r)
	}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL + "/apis/authentication.k8s.io/v1/tokenreviews", QPS: -1, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{CAData: pemCert(srv.Certificate())}}
	a, err := tokenwebhook.New(cfg, "v1", nil, *tokenwebhook.DefaultRetryBackoff())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, ok, err := a.AuthenticateToken(context.Background(), "good")
	if err != nil || !ok || resp.User.GetName() != "alice" {
		t.Fatalf("authentication: %v %v %v, want alice", resp, ok, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, before the Retry-After of 1 s", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(protos) != 2 || protos[0] != "HTTP/2.0" || protos[1] != "HTTP/2.0" {
		t.Errorf("requests %v, want two over HTTP/2", protos)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the retry must not reuse the refused one", n)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
