package webhook

// Error answers: every answer of a webhook route that is not a review.
//
// The body is a metav1.Status (apiVersion v1, kind Status, status Failure,
// message, reason, code) in JSON. kube-apiserver's webhook client decodes
// an error body into a Status when it can (client-go rest Result.Error)
// and then reports Status.message, so tokenstore's reason reaches the
// apiserver's log; a text body it cannot decode is replaced by a generic
// message for the code ("the server is currently unable to handle the
// request" for 503; apimachinery errors.NewGenericServerResponse).
//
// Retrying. The client retries at two levels, and which one fires depends
// on the status code, the Retry-After header and the decoded Status:
//
//   - client-go's request loop (rest Request.request, withRetry.IsNextRetry
//     and checkWait) retries a 429 or any 5xx that carries a Retry-After
//     header in whole seconds, after that many seconds, up to 10 times,
//     whatever the body;
//   - the webhook's own backoff (k8s.io/apiserver pkg/util/webhook
//     WithExponentialBackoff with DefaultShouldRetry; 5 attempts from 500
//     ms, factor 1.5, in kube-apiserver) retries what that loop finally
//     returns when it is a 429, 500 or 504 (by reason or code) or a Status
//     whose details.retryAfterSeconds is positive; a 503 it does not retry.
//
// So "not now" answers carry Retry-After (Unavailable, Overloaded): a
// member that cannot answer gets client-go's ten retries, one a second,
// about 10 s, and then kube-apiserver reports the reason. Its Status carries
// no details.retryAfterSeconds, which would make the webhook's backoff
// repeat those ten retries up to five times, close to a minute per API
// request. An overloaded answer (429) is retried at both levels: that is
// kube-apiserver's rule for 429, whatever the body.
//
// Elsewhere. A retry goes over the connection the client already has: a
// kept-alive HTTP/2 connection through a Kubernetes Service stays with the
// member kube-proxy picked when it was opened, so retrying can never reach
// another member on its own. An Unavailable answer therefore carries
// "Connection: close", which Go's HTTP/2 server turns into a GOAWAY (and
// HTTP/1.1 into closing the connection) once the answer is written, as
// kube-apiserver's own shutdown answers do (k8s.io/apiserver pkg/server/
// filters WithRetryAfter). The retry opens a new connection, and the
// Service sends it to a ready member. An overloaded answer keeps the
// connection: a refusal must stay cheap, and a new TLS handshake per
// retry is not.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultRetryAfter is the wait an Unavailable answer asks for: long
// enough for a leader election to end or a Service to route around the
// member, short enough that a user barely notices.
const DefaultRetryAfter = time.Second

// Failure is an error answer.
type Failure struct {
	// Code is the HTTP status.
	Code int
	// Reason is the Status reason; empty: derived from Code.
	Reason metav1.StatusReason
	// Message says why, in words; kube-apiserver logs it.
	Message string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up). With a 429 it is also details.retryAfterSeconds.
	RetryAfter time.Duration
	// Elsewhere closes the connection after the answer, so that the
	// caller's retry opens a new one (which a Service may route to
	// another member).
	Elsewhere bool
}

// Unavailable is the answer of a member that cannot answer now (it cannot
// confirm it is caught up, it is shutting down): retry in a second, on a
// new connection.
func Unavailable(msg string) Failure {
	return Failure{Code: http.StatusServiceUnavailable, Reason: metav1.StatusReasonServiceUnavailable,
		Message: msg, RetryAfter: DefaultRetryAfter, Elsewhere: true}
}

// TooMany is the answer of an overloaded member: retry after wait, on the
// same connection.
func TooMany(msg string, wait time.Duration) Failure {
	return Failure{Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests, Message: msg, RetryAfter: wait}
}

// WriteFailure writes f as a metav1.Status and returns its HTTP status.
func WriteFailure(w http.ResponseWriter, f Failure) int {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure,
		Message:  f.Message,
		Reason:   f.Reason,
		Code:     int32(f.Code),
	}
	if st.Reason == "" {
		st.Reason = reasonFor(f.Code)
	}
	hd := w.Header()
	if f.RetryAfter > 0 {
		secs := retryAfterSeconds(f.RetryAfter)
		hd.Set("Retry-After", strconv.Itoa(secs))
		if f.Code == http.StatusTooManyRequests {
			st.Details = &metav1.StatusDetails{RetryAfterSeconds: int32(secs)}
		}
	}
	if f.Elsewhere {
		hd.Set("Connection", "close")
	}
	body, err := json.Marshal(&st)
	if err != nil {
		// A Status of strings and numbers always encodes.
		body = []byte(`{"apiVersion":"v1","kind":"Status","status":"Failure"}`)
	}
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.Code)
	_, _ = w.Write(body)
	return f.Code
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// reasonFor is the Status reason Kubernetes gives an HTTP status.
func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	}
	if code >= 500 {
		return metav1.StatusReasonInternalError
	}
	return metav1.StatusReasonUnknown
}
