// Command checkhistory re-checks a history a campaign saved
// (cluster-test/out/<run>/history.json): the porcupine checks, token by
// token explanations of what is not linearizable, the other history
// checks, and optionally porcupine's visualisation.
//
//	go run ./cluster-test/cmd/checkhistory -max-staleness 2s [-html vis.html] cluster-test/out/<run>/history.json
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tokenstore/tokenstore/cluster-test/history"
)

func main() {
	stale := flag.Duration("max-staleness", 2*time.Second, "the members' --max-staleness during the run")
	html := flag.String("html", "", "write porcupine's visualisation of the bounded-staleness check here")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound on each porcupine check")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checkhistory [flags] history.json")
		os.Exit(2)
	}
	ops, err := history.Load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	failed := false
	for _, c := range []struct {
		name  string
		stale time.Duration
	}{{"linearizable: writes and linearizable reads", 0}, {"bounded staleness", *stale}} {
		l := history.CheckLinearizable(c.name, ops, c.stale, false, *timeout)
		fmt.Printf("porcupine %s: %s (%d operations on %d tokens, %v)\n", l.Name, l.Result, l.Operations, l.Tokens, l.Took.Round(time.Millisecond))
		if l.Result != porcupine.Ok {
			failed = true
			fmt.Print(history.Explain(ops, c.stale, 3, *timeout))
		}
	}
	// The final listing, as the run recorded it (the last one per member).
	final := history.Final{}
	for _, op := range ops {
		if op.Final && op.Token != nil {
			if final[op.Member] == nil {
				final[op.Member] = map[string]*history.Token{}
			}
			final[op.Member][op.TokenID] = op.Token
		}
	}
	var vs []history.Violation
	if len(final) > 0 {
		vs = append(vs, history.CheckCreates(ops, final)...)
	}
	vs = append(vs, history.CheckRevoked(ops, *stale)...)
	vs = append(vs, history.CheckMonotonic(ops)...)
	vs = append(vs, history.CheckRevisions(ops)...)
	for _, v := range vs {
		failed = true
		fmt.Println(v)
	}
	if *html != "" {
		l := history.CheckLinearizable("bounded staleness", ops, *stale, true, *timeout)
		if err := l.Visualize(*html, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("visualisation:", *html)
	}
	if failed {
		os.Exit(1)
	}
}
