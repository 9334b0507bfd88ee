package campaign

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/cluster-test/history"
)

// checker runs the end-of-run checks that need the cluster.
type checker struct {
	c   *Cluster
	rec *history.Recorder
	w   *workload
	cfg *Config
	log func(string, ...any)
}

// crashes reports every exit of a member that the harness did not cause,
// with the panic and the first frames of this repository from its log.
func (k *checker) crashes() []history.Violation {
	var out []history.Violation
	for _, m := range k.c.Members {
		for _, crash := range m.Crashes() {
			out = append(out, history.Violation{Check: "member crashed", Detail: crash + panicOf(m.LogPath)})
		}
	}
	return out
}

// panicOf returns the last panic in a member's log with the first frames
// that are tokenstore's own, or "".
func panicOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			start = i
		}
	}
	if start < 0 {
		return ""
	}
	out := "\n  " + lines[start]
	frames := 0
	for _, l := range lines[start+1:] {
		if strings.Contains(l, "github.com/tokenstore/tokenstore/") && !strings.Contains(l, "/api/") {
			out += "\n  " + strings.TrimSpace(l)
			if frames++; frames == 4 {
				break
			}
		}
	}
	return out
}

// serving checks that every current member serves again after the faults
// healed: it runs, reports ready, and answers a bounded and a
// linearizable authentication of a token created after the heal.
func (k *checker) serving(ctx context.Context) Check {
	ch := Check{Name: "every member serves again", Passed: true}
	client := k.cfg.Clients // the checker's client id
	rng := rand.New(rand.NewPCG(uint64(k.cfg.Seed), 0xc4ec))
	var tok known
	seq := 0
	for tok.id == "" {
		ms := k.c.Current()
		seq++
		op := k.w.create(ctx, client, 1_000_000+seq, ms[seq%len(ms)], rng)
		k.rec.Add(op)
		if op.Outcome == history.OK {
			tok, _ = k.w.token(op.TokenID)
			break
		}
		if ctx.Err() != nil {
			ch.Passed = false
			ch.Detail += "\nno member took a create within the heal timeout: " + op.Err
			return ch
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	start := time.Now()
	for _, m := range k.c.Current() {
		var last string
		for {
			if !m.Running() {
				last = "not running"
			} else if !m.Ready(ctx) {
				last = "/readyz is not 200"
			} else {
				b := k.w.verify(ctx, client, m, tok, history.Bounded)
				l := k.w.verify(ctx, client, m, tok, history.Linearizable)
				k.rec.Add(b)
				k.rec.Add(l)
				if b.Outcome == history.OK && b.Authenticated && l.Outcome == history.OK && l.Authenticated {
					break
				}
				last = fmt.Sprintf("bounded verify: %s %s %s; linearizable verify: %s %s %s", b.Outcome, b.Code, b.Reason, l.Outcome, l.Code, l.Reason)
			}
			if ctx.Err() != nil {
				ch.Passed = false
				ch.Detail += fmt.Sprintf("\n%s does not serve %v after the heal: %s", m.Name, time.Since(start).Round(time.Millisecond), last)
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	if ch.Passed {
		ch.Detail = fmt.Sprintf("all %d members answered within %v", len(k.c.Current()), time.Since(start).Round(time.Millisecond))
	}
	return ch
}

// listing is one member's full token list read page by page.
type listing struct {
	revs   map[uint64]bool
	tokens map[string]*history.Token
	ops    []*history.Op
	err    error
}

func (k *checker) list(ctx context.Context, m *harness.Member) listing {
	out := listing{revs: map[uint64]bool{}, tokens: map[string]*history.Token{}}
	page := ""
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		call := k.rec.Now()
		r, err := m.Tokens.ListTokens(lctx, &tokenstorev1.ListTokensRequest{PageSize: 200, PageToken: page,
			Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		ret := k.rec.Now()
		cancel()
		if err != nil {
			out.err = fmt.Errorf("list at %s: %s", m.Name, status.Convert(err).Message())
			return out
		}
		out.revs[r.GetHeader().GetRevision()] = true
		for _, t := range r.GetTokens() {
			v := viewOf(t)
			out.tokens[t.GetId()] = v
			out.ops = append(out.ops, &history.Op{
				Client: k.cfg.Clients, Kind: history.Get, Member: m.Name, Consistency: history.Linearizable,
				TokenID: t.GetId(), Call: call, Return: ret, Outcome: history.OK, Found: true, Token: v,
				Revision: r.GetHeader().GetRevision(), AnsweredBy: r.GetHeader().GetMember(), Final: true,
			})
		}
		if page = r.GetNextPageToken(); page == "" {
			return out
		}
	}
}

// converge waits until every current member lists its tokens at one
// revision (no write in flight: lastUsedAt batches stop once clients do),
// then compares the lists: the state of every member must be the same.
// The listings join the history as final reads.
func (k *checker) converge(ctx context.Context) (history.Final, Check) {
	ch := Check{Name: "all members hold the same state at the same revision (token lists, state hash)"}
	// Let the last lastUsedAt batch land.
	sleepCtx(ctx, 1500*time.Millisecond)
	var last map[string]listing
	for attempt := 1; ; attempt++ {
		ms := k.c.Current()
		last = map[string]listing{}
		revs := map[uint64][]string{}
		ok := true
		for _, m := range ms {
			l := k.list(ctx, m)
			last[m.Name] = l
			for _, op := range l.ops {
				k.rec.Add(op)
			}
			if l.err != nil {
				ok = false
				ch.Detail = l.err.Error()
				continue
			}
			for r := range l.revs {
				revs[r] = append(revs[r], m.Name)
			}
		}
		if ok && len(revs) == 1 {
			var rev uint64
			for r := range revs {
				rev = r
			}
			diffs := compareListings(ms, last)
			ch.Passed = len(diffs) == 0
			if ch.Passed {
				ch.Detail = fmt.Sprintf("%d members list the same %d tokens at revision %d (attempt %d)", len(ms), len(last[ms[0].Name].tokens), rev, attempt)
				ok, detail := k.sameHash(ctx, ms)
				ch.Passed = ok
				ch.Detail += "; " + detail
			} else {
				ch.Detail = fmt.Sprintf("at revision %d:\n%s", rev, strings.Join(diffs, "\n"))
			}
			break
		}
		if ok {
			var parts []string
			for r, who := range revs {
				parts = append(parts, fmt.Sprintf("%d: %s", r, strings.Join(who, ",")))
			}
			sort.Strings(parts)
			ch.Detail = "pages at revisions " + strings.Join(parts, "; ")
		}
		if ctx.Err() != nil {
			ch.Detail = "members never listed at one revision before the heal timeout: " + ch.Detail
			break
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
	final := history.Final{}
	for name, l := range last {
		if l.err == nil {
			final[name] = l.tokens
		}
	}
	return final, ch
}

// sameHash compares the members' state hashes (ClusterService.StateHash,
// which covers every replicated bucket, not only tokens) once they answer
// at one revision.
func (k *checker) sameHash(ctx context.Context, ms []*harness.Member) (bool, string) {
	var last string
	for {
		hashes := map[string][]string{}
		revs := map[uint64]bool{}
		for _, m := range ms {
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := m.Cluster.StateHash(hctx, &tokenstorev1.StateHashRequest{Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
			cancel()
			if status.Code(err) == codes.Unimplemented {
				return true, "no state hash to compare (the server has no ClusterService.StateHash)"
			}
			if err != nil {
				last = fmt.Sprintf("state hash at %s: %s", m.Name, status.Convert(err).Message())
				break
			}
			hashes[r.GetSha256()] = append(hashes[r.GetSha256()], m.Name)
			revs[r.GetHeader().GetRevision()] = true
		}
		if len(revs) == 1 && len(hashes) > 0 && last == "" {
			var rev uint64
			for r := range revs {
				rev = r
			}
			if len(hashes) == 1 {
				return true, fmt.Sprintf("state hashes equal at revision %d", rev)
			}
			var parts []string
			for h, who := range hashes {
				parts = append(parts, fmt.Sprintf("%s: %.16s", strings.Join(who, ","), h))
			}
			sort.Strings(parts)
			return false, fmt.Sprintf("state hashes differ at revision %d: %s", rev, strings.Join(parts, "; "))
		}
		if len(revs) > 1 {
			last = fmt.Sprintf("state hashes at %d different revisions", len(revs))
		}
		if ctx.Err() != nil {
			return false, "no state hashes at one revision before the heal timeout: " + last
		}
		last = ""
		sleepCtx(ctx, 300*time.Millisecond)
	}
}

// compareListings lists how members' token lists differ from the first
// member's.
func compareListings(ms []*harness.Member, ls map[string]listing) []string {
	var out []string
	ref := ls[ms[0].Name].tokens
	for _, m := range ms[1:] {
		got := ls[m.Name].tokens
		for id, t := range ref {
			g, ok := got[id]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s lists %s, %s does not", ms[0].Name, id, m.Name))
			case *g != *t:
				out = append(out, fmt.Sprintf("token %s: %s has %+v, %s has %+v", id, ms[0].Name, *t, m.Name, *g))
			}
		}
		for id := range got {
			if _, ok := ref[id]; !ok {
				out = append(out, fmt.Sprintf("%s lists %s, %s does not", m.Name, id, ms[0].Name))
			}
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... and %d more", len(out)-20))
	}
	return out
}
