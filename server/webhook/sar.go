package webhook

// SubjectAccessReview: the authorization webhook kube-apiserver calls with
// --authorization-webhook-config-file (and the Authorization
// configuration's Webhook authorizer). The contract with the caller, whose
// client (k8s.io/apiserver/plugin/pkg/authorizer/webhook) retries as the
// TokenReview client does (status.go) and falls back to its failurePolicy
// on an error it gives up on:
//
//   - a question answered is HTTP 200 with a SubjectAccessReview in the
//     apiVersion the request used (authorization.k8s.io v1 or v1beta1):
//     status.allowed true, or allowed false without denied, which the
//     client reads as "no opinion" so the next authorizer may still allow
//     (RBAC has no deny rules);
//   - 503 with Retry-After and Connection: close means this member cannot
//     answer now: retry in a second on a new connection;
//   - 429 with Retry-After means it is overloaded: retry after the wait;
//   - 400 (413 when too large) means the request is not a
//     SubjectAccessReview this handler can answer.
//
// Every error answer is a metav1.Status whose message says why.
//
// The handler only translates; the Authorizer decides.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	authorizationv1 "k8s.io/api/authorization/v1"
	authorizationv1beta1 "k8s.io/api/authorization/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The SubjectAccessReview API versions the handler answers in.
const (
	AuthzVersionV1      = "authorization.k8s.io/v1"
	AuthzVersionV1beta1 = "authorization.k8s.io/v1beta1"
)

const kindSubjectAccessReview = "SubjectAccessReview"

// AccessReview is the question of a SubjectAccessReview: who, and exactly
// one of a resource request and a non-resource request.
type AccessReview struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string

	Resource    *authorizationv1.ResourceAttributes
	NonResource *authorizationv1.NonResourceAttributes
	// RemoteAddr is the caller's address, for logs.
	RemoteAddr string
}

// AccessAnswer is the answer to an AccessReview.
type AccessAnswer struct {
	Allowed         bool
	Reason          string
	EvaluationError string
	// Revision, RBACRevision and Member say which state answered; they
	// are sent as the X-Tokenstore-Revision, X-Tokenstore-RBAC-Revision
	// and X-Tokenstore-Member response headers.
	Revision     uint64
	RBACRevision uint64
	Member       string
}

// Authorizer answers an AccessReview. An error means no answer: it is sent
// as Unavailable (503), or as TooMany (429) when it is (or wraps) an
// *Overloaded.
type Authorizer func(ctx context.Context, r AccessReview) (AccessAnswer, error)

// AccessReviewConfig configures a SubjectAccessReview handler.
type AccessReviewConfig struct {
	Authorize Authorizer
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// Observe, when set, is called with the HTTP status of every answer.
	Observe func(code int)
}

// NewAccessReview returns a SubjectAccessReview handler for cfg. It is
// safe for concurrent use.
func NewAccessReview(cfg AccessReviewConfig) http.Handler {
	return &sarHandler{cfg: cfg}
}

type sarHandler struct{ cfg AccessReviewConfig }

func (h *sarHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := h.serve(w, r)
	if h.cfg.Observe != nil {
		h.cfg.Observe(code)
	}
}

func (h *sarHandler) serve(w http.ResponseWriter, r *http.Request) int {
	max := h.cfg.MaxBodyBytes
	if max <= 0 {
		max = 1 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", max))
		}
		return fail(w, http.StatusBadRequest, "read request body: "+err.Error())
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(body, &tm); err != nil {
		return fail(w, http.StatusBadRequest, "request body is not a SubjectAccessReview: "+err.Error())
	}
	if tm.Kind != "" && tm.Kind != kindSubjectAccessReview {
		return fail(w, http.StatusBadRequest, fmt.Sprintf("kind %q: want %s", tm.Kind, kindSubjectAccessReview))
	}
	version := tm.APIVersion
	if version == "" {
		version = AuthzVersionV1
	}
	// v1 and v1beta1 differ in one field's name (groups is "group" in
	// v1beta1), so each is read with its own type.
	var q AccessReview
	var spec any
	switch version {
	case AuthzVersionV1:
		var sar authorizationv1.SubjectAccessReview
		if err := json.Unmarshal(body, &sar); err != nil {
			return fail(w, http.StatusBadRequest, "request body is not a SubjectAccessReview: "+err.Error())
		}
		s := sar.Spec
		q = AccessReview{User: s.User, UID: s.UID, Groups: s.Groups, Resource: s.ResourceAttributes, NonResource: s.NonResourceAttributes}
		for k, v := range s.Extra {
			q.extra(k, v)
		}
		spec = s
	case AuthzVersionV1beta1:
		var sar authorizationv1beta1.SubjectAccessReview
		if err := json.Unmarshal(body, &sar); err != nil {
			return fail(w, http.StatusBadRequest, "request body is not a SubjectAccessReview: "+err.Error())
		}
		s := sar.Spec
		q = AccessReview{User: s.User, UID: s.UID, Groups: s.Groups}
		if ra := s.ResourceAttributes; ra != nil {
			q.Resource = &authorizationv1.ResourceAttributes{Namespace: ra.Namespace, Verb: ra.Verb, Group: ra.Group,
				Version: ra.Version, Resource: ra.Resource, Subresource: ra.Subresource, Name: ra.Name}
		}
		if na := s.NonResourceAttributes; na != nil {
			q.NonResource = &authorizationv1.NonResourceAttributes{Path: na.Path, Verb: na.Verb}
		}
		for k, v := range s.Extra {
			q.extra(k, v)
		}
		spec = s
	default:
		return fail(w, http.StatusBadRequest, fmt.Sprintf("apiVersion %q: want %s or %s", tm.APIVersion, AuthzVersionV1, AuthzVersionV1beta1))
	}
	// The checks of Kubernetes' own SubjectAccessReview validation.
	if (q.Resource == nil) == (q.NonResource == nil) {
		return fail(w, http.StatusBadRequest, "spec: exactly one of nonResourceAttributes or resourceAttributes must be specified")
	}
	if q.User == "" && len(q.Groups) == 0 {
		return fail(w, http.StatusBadRequest, "spec: at least one of user or group must be specified")
	}
	q.RemoteAddr = r.RemoteAddr

	ans, err := h.cfg.Authorize(r.Context(), q)
	if err != nil {
		return WriteFailure(w, noAnswer(err))
	}
	out, err := encodeAccessReview(version, spec, ans)
	if err != nil {
		return fail(w, http.StatusInternalServerError, "encode SubjectAccessReview: "+err.Error())
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	hd.Set("X-Tokenstore-Revision", strconv.FormatUint(ans.Revision, 10))
	hd.Set("X-Tokenstore-RBAC-Revision", strconv.FormatUint(ans.RBACRevision, 10))
	if ans.Member != "" {
		hd.Set("X-Tokenstore-Member", ans.Member)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return http.StatusOK
}

// extra adds one extra key, whatever the version's value type.
func (q *AccessReview) extra(k string, v []string) {
	if q.Extra == nil {
		q.Extra = map[string][]string{}
	}
	q.Extra[k] = v
}

// encodeAccessReview renders the answer as a SubjectAccessReview of
// version, with the request's spec echoed as the Kubernetes API does.
// denied is never set: not allowed is "no opinion".
func encodeAccessReview(version string, spec any, a AccessAnswer) ([]byte, error) {
	if version == AuthzVersionV1 {
		return json.Marshal(&authorizationv1.SubjectAccessReview{
			TypeMeta: metav1.TypeMeta{APIVersion: AuthzVersionV1, Kind: kindSubjectAccessReview},
			Spec:     spec.(authorizationv1.SubjectAccessReviewSpec),
			Status:   authorizationv1.SubjectAccessReviewStatus{Allowed: a.Allowed, Reason: a.Reason, EvaluationError: a.EvaluationError},
		})
	}
	return json.Marshal(&authorizationv1beta1.SubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: AuthzVersionV1beta1, Kind: kindSubjectAccessReview},
		Spec:     spec.(authorizationv1beta1.SubjectAccessReviewSpec),
		Status:   authorizationv1beta1.SubjectAccessReviewStatus{Allowed: a.Allowed, Reason: a.Reason, EvaluationError: a.EvaluationError},
	})
}
