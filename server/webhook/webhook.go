// Package webhook serves Kubernetes webhook token authentication over HTTP:
// the TokenReview endpoint kube-apiserver calls with
// --authentication-token-webhook-config-file, and the Rancher kube-api-auth
// compatible POST /v1/authenticate, which takes and answers the same
// TokenReview shape.
//
// The contract with the caller (kube-apiserver's webhook client turns any
// non-2xx answer into an error, which fails the authentication unless it
// retries; status.go says which answers it retries):
//
//   - a question answered, accepted or refused, is HTTP 200 with a
//     TokenReview in the apiVersion the request used (authentication.k8s.io
//     v1 or v1beta1); a refusal is authenticated: false with the reason in
//     status.error;
//   - 503 with Retry-After and Connection: close means this member cannot
//     answer now: retry in a second on a new connection (another member
//     may answer);
//   - 429 with Retry-After means it is overloaded: retry after the wait;
//   - 400 (413 when too large) means the request is not a TokenReview.
//
// Every error answer is a metav1.Status whose message says why.
//
// The handler only translates: the Authenticator decides. Handlers are
// safe for concurrent use.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The TokenReview API versions a handler answers in.
const (
	VersionV1      = "authentication.k8s.io/v1"
	VersionV1beta1 = "authentication.k8s.io/v1beta1"
)

const kindTokenReview = "TokenReview"

// Review is the question of a TokenReview.
type Review struct {
	Token     string
	Audiences []string
	// RemoteAddr is the caller's address, for logs.
	RemoteAddr string
}

// Answer is the answer to a Review.
type Answer struct {
	Authenticated bool
	User          authenticationv1.UserInfo
	Audiences     []string
	// Error is the reason of a refusal.
	Error string
	// Revision and Member say which state answered; they are sent as the
	// X-Tokenstore-Revision and X-Tokenstore-Member response headers.
	Revision uint64
	Member   string
}

// Authenticator answers a Review. An error means no answer: it is sent as
// Unavailable (503), or as TooMany (429) when it is (or wraps) an
// *Overloaded.
type Authenticator func(ctx context.Context, r Review) (Answer, error)

// Overloaded is the error of an Authenticator that sheds load.
type Overloaded struct {
	RetryAfter time.Duration
	Reason     string
}

func (o *Overloaded) Error() string { return "overloaded: " + o.Reason }

// Config configures a handler.
type Config struct {
	Authenticate Authenticator
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// DefaultVersion answers a request that names no apiVersion (v1 when
	// empty). Rancher's kube-api-auth answers v1beta1.
	DefaultVersion string
	// Rancher makes the handler kube-api-auth compatible: a token name's
	// "ext/" prefix (Rancher ext tokens) is dropped before authenticating.
	Rancher bool
	// Observe, when set, is called with the HTTP status of every answer.
	Observe func(code int)
}

// New returns a handler for cfg.
func New(cfg Config) http.Handler {
	if cfg.DefaultVersion == "" {
		cfg.DefaultVersion = VersionV1
	}
	return &handler{cfg: cfg}
}

type handler struct{ cfg Config }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := h.serve(w, r)
	if h.cfg.Observe != nil {
		h.cfg.Observe(code)
	}
}

// request is what a TokenReview request carries; v1 and v1beta1 spell it
// the same.
type request struct {
	metav1.TypeMeta `json:",inline"`
	Spec            authenticationv1.TokenReviewSpec `json:"spec"`
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) int {
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
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(w, http.StatusBadRequest, "request body is not a TokenReview: "+err.Error())
	}
	if req.Kind != "" && req.Kind != kindTokenReview {
		return fail(w, http.StatusBadRequest, fmt.Sprintf("kind %q: want %s", req.Kind, kindTokenReview))
	}
	version := req.APIVersion
	switch version {
	case "":
		version = h.cfg.DefaultVersion
	case VersionV1, VersionV1beta1:
	default:
		return fail(w, http.StatusBadRequest, fmt.Sprintf("apiVersion %q: want %s or %s", req.APIVersion, VersionV1, VersionV1beta1))
	}
	tok := req.Spec.Token
	if h.cfg.Rancher {
		tok = strings.TrimPrefix(tok, "ext/")
	}
	ans, err := h.cfg.Authenticate(r.Context(), Review{Token: tok, Audiences: req.Spec.Audiences, RemoteAddr: r.RemoteAddr})
	if err != nil {
		return WriteFailure(w, noAnswer(err))
	}
	out, err := encode(version, ans)
	if err != nil {
		return fail(w, http.StatusInternalServerError, "encode TokenReview: "+err.Error())
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	hd.Set("X-Tokenstore-Revision", strconv.FormatUint(ans.Revision, 10))
	if ans.Member != "" {
		hd.Set("X-Tokenstore-Member", ans.Member)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return http.StatusOK
}

// noAnswer is the answer to an Authenticator's or Authorizer's error:
// overloaded, or unable to answer now.
func noAnswer(err error) Failure {
	var over *Overloaded
	if errors.As(err, &over) {
		return TooMany(err.Error(), over.RetryAfter)
	}
	return Unavailable(err.Error())
}

// encode renders the answer as a TokenReview of version, with the
// version's own type. The request's spec is not echoed: it holds the token.
func encode(version string, a Answer) ([]byte, error) {
	if version == VersionV1 {
		return json.Marshal(&authenticationv1.TokenReview{
			TypeMeta: metav1.TypeMeta{APIVersion: VersionV1, Kind: kindTokenReview},
			Status: authenticationv1.TokenReviewStatus{
				Authenticated: a.Authenticated,
				User:          a.User,
				Audiences:     a.Audiences,
				Error:         a.Error,
			},
		})
	}
	var extra map[string]authenticationv1beta1.ExtraValue
	if a.User.Extra != nil {
		extra = make(map[string]authenticationv1beta1.ExtraValue, len(a.User.Extra))
		for k, v := range a.User.Extra {
			extra[k] = authenticationv1beta1.ExtraValue(v)
		}
	}
	return json.Marshal(&authenticationv1beta1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: VersionV1beta1, Kind: kindTokenReview},
		Status: authenticationv1beta1.TokenReviewStatus{
			Authenticated: a.Authenticated,
			User: authenticationv1beta1.UserInfo{
				Username: a.User.Username,
				UID:      a.User.UID,
				Groups:   a.User.Groups,
				Extra:    extra,
			},
			Audiences: a.Audiences,
			Error:     a.Error,
		},
	})
}

// fail answers a request that is not a question this handler answers
// (status.go).
func fail(w http.ResponseWriter, code int, msg string) int {
	return WriteFailure(w, Failure{Code: code, Message: msg})
}
