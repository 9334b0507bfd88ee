package main

import (
	"context"
	"time"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
)

// variant is one side of a side-by-side comparison: a kind of request
// (lg.Op) sent to one member, reported under label. Every comparison in
// tsbench is a list of variants run in rotating order, so adding a kind of
// request (a JWT mode, say) is one more variant.
type variant struct {
	label, member string
	do            lg.Op
}

// runVariants runs rounds rounds of d of every variant with clients
// closed-loop clients, the order rotating each round (A B, B A for two),
// and measures procs' CPU in each. tag is appended to every label. It
// stops early when ctx ends; failures are the caller's to count.
func (b *bench) runVariants(ctx context.Context, procs *lg.ProcSet, vs []variant, clients, rounds int, d time.Duration, tag string) []lg.RoundResult {
	var out []lg.RoundResult
	for r := 1; r <= rounds && ctx.Err() == nil; r++ {
		order := lg.Rotate(vs, r)
		if len(vs) == 2 {
			order = lg.ABBA(vs, r)
		}
		for _, v := range order {
			before := procs.Snap()
			res := lg.RunRound(ctx, clients, d, v.do)
			procs.Fill(&res, before, procs.Snap())
			res.Round, res.Label, res.Member = r, v.label+tag, v.member
			out = append(out, res)
		}
	}
	return out
}
