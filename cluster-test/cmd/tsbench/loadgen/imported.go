package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
)

// importBatch is the tokens per ImportTokens request (one raft entry each).
const importBatch = 50

// ImportRancherTokens makes n Rancher tokens (ClusterAuthToken name and a
// secret of Rancher's form) hashed in format f, imports them through the
// gRPC ImportTokens call tokenctl token import uses, and returns them.
// Hashing runs on every CPU: a scrypt hash (N=2^15) takes tens of
// milliseconds.
func ImportRancherTokens(ctx context.Context, c tokenstorev1.TokenServiceClient, member string, n int, f rancher.Format, prefix string) (*TokenSet, error) {
	set := &TokenSet{Bearers: make([]string, n), Users: make([]string, n)}
	toks := make([]*tokenstorev1.ImportedToken, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				secret, err := rancherSecret()
				if err == nil {
					var h string
					h, err = rancher.NewHash(f, secret)
					id := fmt.Sprintf("%s-%d", prefix, i)
					user := fmt.Sprintf("u-%s-%d", prefix, i)
					toks[i] = &tokenstorev1.ImportedToken{Id: id, User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"bench"}}, RancherHash: h}
					set.Bearers[i], set.Users[i] = id+":"+secret, user
				}
				errs[i] = err
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("hash Rancher token %d: %w", i, err)
		}
	}
	for i := 0; i < n; i += importBatch {
		batch := toks[i:min(i+importBatch, n)]
		r, err := c.ImportTokens(ctx, &tokenstorev1.ImportTokensRequest{Tokens: batch})
		if err != nil {
			return nil, fmt.Errorf("import tokens %d-%d at %s: %w", i, i+len(batch)-1, member, err)
		}
		if got := len(r.GetImported()); got != len(batch) {
			return nil, fmt.Errorf("import at %s stored %d of %d tokens", member, got, len(batch))
		}
	}
	return set, nil
}

// FirstUse authenticates every token of the set once at the member behind
// c, linearizably (so the member has applied the import), one at a time:
// an imported slow hash (scrypt) is computed on its first success at each
// member, and concurrent first uses would be refused while every slow-hash
// slot is busy. Measured rounds after it see only repeated use.
func FirstUse(ctx context.Context, c tokenstorev1.AuthServiceClient, set *TokenSet) error {
	for i, b := range set.Bearers {
		for {
			r, err := c.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: b, Consistency: Linearizable.C})
			if status.Code(err) == codes.ResourceExhausted {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("first use of imported token %d: %w", i, err)
			}
			if !r.GetAuthenticated() || r.GetUser().GetUsername() != set.Users[i] {
				return fmt.Errorf("imported token %d refused or wrong user: %v %q", i, r.GetReason(), r.GetUser().GetUsername())
			}
			break
		}
	}
	return nil
}

// rancherSecret is a secret of the form Rancher generates: 54 characters
// of its alphabet.
func rancherSecret() (string, error) {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 54)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
