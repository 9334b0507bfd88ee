package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/status"
)

// grace is how long a request still in flight when a round's time is up may
// take before the round gives up on it (it is then counted as an error).
const grace = 30 * time.Second

// op is one request of one closed-loop client. worker is the client's index
// and seq counts its requests. It returns nil only when the answer was
// received and checked; a *wrongAnswer when the answer came but was not the
// expected one; any other error is an RPC failure.
type op func(ctx context.Context, worker, seq int) error

// wrongAnswer is an answer that arrived but failed its check (a refused
// token, a response from another member than the one asked, ...).
type wrongAnswer struct{ msg string }

func (w *wrongAnswer) Error() string { return w.msg }

func wrongf(format string, args ...any) error {
	return &wrongAnswer{msg: fmt.Sprintf(format, args...)}
}

// roundResult is what one timed round measured.
type roundResult struct {
	round   int
	label   string // mode or route, e.g. "bounded", "via leader"
	member  string // member the load was sent to
	elapsed time.Duration
	ok      int
	wrong   int
	errs    int
	// samples holds a few distinct failure messages for the report.
	samples []string
	// lat holds the latency of every checked answer, sorted.
	lat []time.Duration
	// cpu is the CPU time each process used during the round, by name;
	// empty where the platform does not tell.
	cpu map[string]time.Duration
	// busy is the fraction of the whole machine's CPU time in use during
	// the round, or -1 when unknown.
	busy float64
}

// rate is checked answers per second.
func (r *roundResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p <= 100) of the latencies by the
// nearest-rank method, or 0 without samples.
func (r *roundResult) pct(p float64) time.Duration {
	return percentile(r.lat, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// failures is the count of answers that failed a check plus RPC errors.
func (r *roundResult) failures() int { return r.wrong + r.errs }

// note records a failure message, keeping only a few distinct ones.
func (r *roundResult) note(msg string) {
	if len(r.samples) < 5 && !slices.Contains(r.samples, msg) {
		r.samples = append(r.samples, msg)
	}
}

// worker is one client's tally; each goroutine owns one, merged after the
// round so the hot loop shares nothing.
type worker struct {
	lat     []time.Duration
	ok      int
	wrong   int
	errs    int
	samples []string
}

// runRound runs clients closed-loop clients calling do until d has passed,
// then waits for the requests in flight. Latency is measured per request
// around do, so it includes the client's own gRPC work: on a shared machine
// that is part of what a caller sees.
func runRound(ctx context.Context, clients int, d time.Duration, do op) roundResult {
	start := time.Now()
	end := start.Add(d)
	rctx, cancel := context.WithDeadline(ctx, end.Add(grace))
	defer cancel()
	ws := make([]worker, clients)
	var wg sync.WaitGroup
	for i := range ws {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := &ws[i]
			w.lat = make([]time.Duration, 0, 1<<14)
			for seq := 0; rctx.Err() == nil; seq++ {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := do(rctx, i, seq)
				dt := time.Since(t0)
				var wa *wrongAnswer
				switch {
				case err == nil:
					w.ok++
					w.lat = append(w.lat, dt)
				case errors.As(err, &wa):
					w.wrong++
					w.note(wa.msg)
				default:
					w.errs++
					w.note(status.Code(err).String() + ": " + status.Convert(err).Message())
				}
			}
		}(i)
	}
	wg.Wait()
	res := roundResult{elapsed: time.Since(start)}
	n := 0
	for i := range ws {
		n += len(ws[i].lat)
	}
	res.lat = make([]time.Duration, 0, n)
	for i := range ws {
		w := &ws[i]
		res.ok += w.ok
		res.wrong += w.wrong
		res.errs += w.errs
		res.lat = append(res.lat, w.lat...)
		for _, s := range w.samples {
			res.note(s)
		}
	}
	slices.Sort(res.lat)
	return res
}

func (w *worker) note(msg string) {
	if len(w.samples) < 5 && !slices.Contains(w.samples, msg) {
		w.samples = append(w.samples, msg)
	}
}
