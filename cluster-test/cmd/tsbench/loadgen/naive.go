package loadgen

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// NaiveCASOp is the design tokenstore's lastUsedAt register replaces
// (DESIGN.md, failure 2), built on tokenstore's own raft group: every
// authentication is an Authenticate, a linearizable GetToken for the
// token's update revision, and one replicated compare-and-swap,
// UpdateToken{description = now, expected_update_revision = rev}. An
// auth proxy of that design answers 401 when the swap loses (ABORTED), so
// a conflict is returned as a wrong answer: a failed authentication. RPC
// errors are failures too. Run it on a cluster with --last-used-interval 0
// so the register does not run beside it.
func NaiveCASOp(auth []tokenstorev1.AuthServiceClient, tokens []tokenstorev1.TokenServiceClient, set *TokenSet, member string) Op {
	n := len(set.Bearers)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		c := w % len(auth)
		r, err := auth[c].Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: set.Bearers[i], Consistency: Bounded.C})
		if err != nil {
			return err
		}
		if !r.GetAuthenticated() || r.GetHeader().GetMember() != member || r.GetUser().GetUsername() != set.Users[i] {
			return Wrongf("authentication refused or wrong: %v", r.GetReason())
		}
		id, _, _ := token.Parse(set.Bearers[i])
		g, err := tokens[c].GetToken(ctx, &tokenstorev1.GetTokenRequest{Id: id, Consistency: Linearizable.C})
		if err != nil {
			return err
		}
		now := strconv.FormatInt(time.Now().UnixNano(), 10)
		_, err = tokens[c].UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{
			Id: id, Description: &now, ExpectedUpdateRevision: g.GetToken().GetUpdateRevision(),
		})
		if status.Code(err) == codes.Aborted {
			return Wrongf("conflict: lastUsedAt compare-and-swap lost (a naive proxy answers 401)")
		}
		return err
	}
}

// Rotate returns items rotated left by round-1, so over len(items) rounds
// every item runs once in every position: the N-way form of ABBA.
func Rotate[T any](items []T, round int) []T {
	k := (round - 1) % len(items)
	out := make([]T, 0, len(items))
	out = append(out, items[k:]...)
	return append(out, items[:k]...)
}
