package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The webhook request kinds: kube-apiserver's TokenReview (and, in
// rbacload.go, SubjectAccessReview) over HTTP with keep-alive. Request
// bodies are encoded once, before the rounds, so the load generator's time
// goes to HTTP and to checking answers, as a kube-apiserver's would.
//
// Every kind of request is an Op built over what it presents: a TokenSet
// (native, imported, or, once OIDC lands, signed JWTs) and the interface it
// goes through (AuthOp for gRPC, TokenReviewOp for HTTP). Measuring one
// more kind is a constructor here and one variant in tsbench.

// TokenReviewPath is the TokenReview v1 endpoint of a member's HTTP
// listener.
const TokenReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"

// KeepAliveClient returns c with a connection pool that keeps one idle
// connection per concurrent client, so a closed-loop round reuses its
// connections instead of opening new ones (HTTP keep-alive). c must come
// from the harness (Cluster.HTTPClient), which decides transport security.
func KeepAliveClient(c *http.Client, clients int) *http.Client {
	if t, ok := c.Transport.(*http.Transport); ok {
		t.MaxIdleConns = clients
		t.MaxIdleConnsPerHost = clients
		t.MaxConnsPerHost = 0
	}
	return c
}

// TokenReviewOp posts a TokenReview v1 for each of the set's tokens in turn
// to url (a member's TokenReviewPath) and checks every answer: HTTP 200,
// answered by member (X-Tokenstore-Member), authenticated, as the token's
// user.
func TokenReviewOp(client *http.Client, url string, set *TokenSet, member string) (Op, error) {
	bodies := make([][]byte, len(set.Bearers))
	for i, b := range set.Bearers {
		var err error
		bodies[i], err = json.Marshal(&authenticationv1.TokenReview{
			TypeMeta: metaV1("authentication.k8s.io/v1", "TokenReview"),
			Spec:     authenticationv1.TokenReviewSpec{Token: b},
		})
		if err != nil {
			return nil, fmt.Errorf("encode TokenReview: %w", err)
		}
	}
	n := len(bodies)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		var tr authenticationv1.TokenReview
		if err := postJSON(ctx, client, url, bodies[i], member, &tr); err != nil {
			return err
		}
		if !tr.Status.Authenticated {
			return Wrongf("token refused: %s", tr.Status.Error)
		}
		if got := tr.Status.User.Username; got != set.Users[i] {
			return Wrongf("authenticated as %q, want %q", got, set.Users[i])
		}
		return nil
	}, nil
}

// postJSON posts body to url, checks that the answer is a 200 from member
// and decodes it into out. A non-200 status is an error (kube-apiserver
// treats it as "webhook down"); an answer from another member is wrong.
// The body is read to its end so the connection is reused.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte, member string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	if got := resp.Header.Get("X-Tokenstore-Member"); got != member {
		return Wrongf("answered by %q, asked %s", got, member)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return Wrongf("undecodable answer: %v", err)
	}
	return nil
}

// metaV1 is the TypeMeta of a request body.
func metaV1(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
