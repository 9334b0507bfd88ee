package campaign

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/cluster-test/history"
)

// labelKey is the token label that carries a create's unique label.
const labelKey = "cluster-test"

// known is a token a client may act on: created and acknowledged.
type known struct {
	id, bearer string
}

// workload runs concurrent clients against random members and records
// every call.
type workload struct {
	c   *Cluster
	rec *history.Recorder
	cfg *Config

	mu     sync.Mutex
	tokens []known
}

// pickToken returns a recent token most of the time (so clients contend
// on the same tokens), any token sometimes.
func (w *workload) pickToken(rng *rand.Rand) (known, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.tokens)
	if n == 0 {
		return known{}, false
	}
	if rng.IntN(10) == 0 {
		return w.tokens[rng.IntN(n)], true
	}
	hot := min(n, w.cfg.HotTokens)
	return w.tokens[n-1-rng.IntN(hot)], true
}

// token returns a token this workload created.
func (w *workload) token(id string) (known, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.tokens) - 1; i >= 0; i-- {
		if w.tokens[i].id == id {
			return w.tokens[i], true
		}
	}
	return known{}, false
}

func (w *workload) addToken(k known) {
	w.mu.Lock()
	w.tokens = append(w.tokens, k)
	w.mu.Unlock()
}

// run starts cfg.Clients clients and returns when ctx ends and they all
// stopped.
func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i, rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(i+1))))
		}()
	}
	wg.Wait()
}

func (w *workload) client(ctx context.Context, id int, rng *rand.Rand) {
	seq := 0
	for ctx.Err() == nil {
		ms := w.c.Current()
		m := ms[rng.IntN(len(ms))]
		seq++
		op := w.one(ctx, id, seq, m, rng)
		if op == nil {
			continue
		}
		if ctx.Err() != nil && op.Outcome != history.OK && op.Outcome != history.Refused {
			// Cut short by the end of the run, not by the cluster. A write
			// stays in the history (it may have been applied); a read
			// observed nothing.
			if !op.IsWrite() {
				return
			}
		}
		w.rec.Add(op)
		if op.IsWrite() && op.Outcome == history.OK && len(ms) > 1 && rng.IntN(2) == 0 {
			// Read it back at once at another member: the read most
			// likely to catch a member that answers before it caught up.
			other := ms[rng.IntN(len(ms))]
			for other == m {
				other = ms[rng.IntN(len(ms))]
			}
			if tok, ok := w.token(op.TokenID); ok {
				var back *history.Op
				if rng.IntN(2) == 0 {
					back = w.verify(ctx, id, other, tok, history.Linearizable)
				} else {
					back = w.get(ctx, id, other, tok.id, history.Linearizable)
				}
				if ctx.Err() == nil {
					w.rec.Add(back)
				}
			}
		}
		pause := time.Duration(rng.IntN(int(w.cfg.Think) + 1))
		if op.Outcome == history.Unknown || op.Outcome == history.Failed {
			pause += 50*time.Millisecond + time.Duration(rng.IntN(100))*time.Millisecond
		}
		sleepCtx(ctx, pause)
	}
}

// one runs one random operation; nil when there was nothing to do.
func (w *workload) one(ctx context.Context, client, seq int, m *harness.Member, rng *rand.Rand) *history.Op {
	tok, haveTok := w.pickToken(rng)
	r := rng.IntN(100)
	if !haveTok || r < 15 {
		return w.create(ctx, client, seq, m, rng)
	}
	switch {
	case r < 35:
		return w.update(ctx, client, seq, m, tok, rng)
	case r < 40:
		return w.revoke(ctx, client, m, tok, rng)
	case r < 55:
		return w.verify(ctx, client, m, tok, history.Linearizable)
	case r < 75:
		return w.verify(ctx, client, m, tok, history.Bounded)
	case r < 90:
		return w.get(ctx, client, m, tok.id, history.Linearizable)
	default:
		return w.get(ctx, client, m, tok.id, history.Bounded)
	}
}

// writeTimeout is usually generous, sometimes very short so that writes
// end with an unknown outcome even without faults.
func (w *workload) writeTimeout(rng *rand.Rand) time.Duration {
	if rng.IntN(20) == 0 {
		return time.Duration(5+rng.IntN(100)) * time.Millisecond
	}
	return w.cfg.WriteTimeout
}

func consistency(c history.Consistency) tokenstorev1.ReadConsistency {
	if c == history.Linearizable {
		return tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	}
	return tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED
}

func viewOf(t *tokenstorev1.Token) *history.Token {
	if t == nil {
		return nil
	}
	v := &history.Token{
		Disabled: t.GetDisabled(), Revoked: t.GetRevoked(), Description: t.GetDescription(),
		Label: t.GetLabels()[labelKey], CreateRevision: t.GetCreateRevision(), UpdateRevision: t.GetUpdateRevision(),
	}
	if t.GetLastUsedAt() != nil {
		v.LastUsedUnix = t.GetLastUsedAt().AsTime().UnixNano()
	}
	return v
}

// writeOutcome classifies a write's error: refusals decided when the entry
// was applied change nothing and are the same everywhere; any other error
// leaves the outcome unknown.
func writeOutcome(op *history.Op, err error) {
	if err == nil {
		op.Outcome = history.OK
		return
	}
	st := status.Convert(err)
	op.Code, op.Err = st.Code().String(), st.Message()
	switch st.Code() {
	case codes.NotFound, codes.FailedPrecondition:
		if strings.HasPrefix(st.Message(), "refused") {
			op.Outcome = history.Refused
			return
		}
	}
	op.Outcome = history.Unknown
}

func readFailed(op *history.Op, err error) {
	st := status.Convert(err)
	op.Outcome, op.Code, op.Err = history.Failed, st.Code().String(), st.Message()
}

func header(op *history.Op, h *tokenstorev1.ResponseHeader) {
	op.Revision, op.AnsweredBy = h.GetRevision(), h.GetMember()
}

func (w *workload) create(ctx context.Context, client, seq int, m *harness.Member, rng *rand.Rand) *history.Op {
	label := fmt.Sprintf("c%d-%d", client, seq)
	op := &history.Op{Client: client, Kind: history.Create, Member: m.Name, Label: label, Description: "d-" + label}
	cctx, cancel := context.WithTimeout(ctx, w.writeTimeout(rng))
	defer cancel()
	op.Call = w.rec.Now()
	r, err := m.Tokens.CreateToken(cctx, &tokenstorev1.CreateTokenRequest{
		User:        &tokenstorev1.UserInfo{Username: "user-" + label, Groups: []string{"cluster-test"}},
		Description: op.Description, Labels: map[string]string{labelKey: label},
	})
	op.Return = w.rec.Now()
	writeOutcome(op, err)
	if err == nil {
		op.TokenID, op.Token = r.GetToken().GetId(), viewOf(r.GetToken())
		header(op, r.GetHeader())
		w.addToken(known{id: op.TokenID, bearer: r.GetBearerToken()})
	}
	return op
}

func (w *workload) update(ctx context.Context, client, seq int, m *harness.Member, tok known, rng *rand.Rand) *history.Op {
	op := &history.Op{Client: client, Kind: history.Update, Member: m.Name, TokenID: tok.id,
		Description: fmt.Sprintf("u%d-%d", client, seq), Disabled: rng.IntN(2) == 0}
	cctx, cancel := context.WithTimeout(ctx, w.writeTimeout(rng))
	defer cancel()
	op.Call = w.rec.Now()
	r, err := m.Tokens.UpdateToken(cctx, &tokenstorev1.UpdateTokenRequest{Id: tok.id, Disabled: &op.Disabled, Description: &op.Description})
	op.Return = w.rec.Now()
	writeOutcome(op, err)
	if err == nil {
		op.Token = viewOf(r.GetToken())
		header(op, r.GetHeader())
	}
	return op
}

func (w *workload) revoke(ctx context.Context, client int, m *harness.Member, tok known, rng *rand.Rand) *history.Op {
	op := &history.Op{Client: client, Kind: history.Revoke, Member: m.Name, TokenID: tok.id}
	cctx, cancel := context.WithTimeout(ctx, w.writeTimeout(rng))
	defer cancel()
	op.Call = w.rec.Now()
	r, err := m.Tokens.RevokeToken(cctx, &tokenstorev1.RevokeTokenRequest{Id: tok.id})
	op.Return = w.rec.Now()
	writeOutcome(op, err)
	if err == nil {
		op.Token = viewOf(r.GetToken())
		header(op, r.GetHeader())
	}
	return op
}

func (w *workload) verify(ctx context.Context, client int, m *harness.Member, tok known, c history.Consistency) *history.Op {
	op := &history.Op{Client: client, Kind: history.Verify, Member: m.Name, TokenID: tok.id, Consistency: c}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.ReadTimeout)
	defer cancel()
	op.Call = w.rec.Now()
	r, err := m.Auth.Authenticate(cctx, &tokenstorev1.AuthenticateRequest{Token: tok.bearer, Consistency: consistency(c)})
	op.Return = w.rec.Now()
	if err != nil {
		readFailed(op, err)
		return op
	}
	op.Outcome = history.OK
	op.Authenticated = r.GetAuthenticated()
	if r.GetReason() != tokenstorev1.DenyReason_DENY_REASON_UNSPECIFIED {
		op.Reason = strings.TrimPrefix(r.GetReason().String(), "DENY_REASON_")
	}
	header(op, r.GetHeader())
	return op
}

func (w *workload) get(ctx context.Context, client int, m *harness.Member, id string, c history.Consistency) *history.Op {
	op := &history.Op{Client: client, Kind: history.Get, Member: m.Name, TokenID: id, Consistency: c}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.ReadTimeout)
	defer cancel()
	op.Call = w.rec.Now()
	r, err := m.Tokens.GetToken(cctx, &tokenstorev1.GetTokenRequest{Id: id, Consistency: consistency(c)})
	op.Return = w.rec.Now()
	switch {
	case status.Code(err) == codes.NotFound:
		op.Outcome = history.OK // answered: no such token (yet)
	case err != nil:
		readFailed(op, err)
	default:
		op.Outcome, op.Found, op.Token = history.OK, true, viewOf(r.GetToken())
		header(op, r.GetHeader())
	}
	return op
}
