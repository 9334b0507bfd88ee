package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/status"
)

// Grace is how long a request still in flight when a round's time is up may
// take before the round gives up on it (it is then counted as an error).
const Grace = 30 * time.Second

// Op is one request of one closed-loop client. worker is the client's index
// and seq counts its requests. It returns nil only when the answer was
// received and checked; a *WrongAnswer when the answer came but was not the
// expected one; any other error is an RPC failure.
type Op func(ctx context.Context, worker, seq int) error

// WrongAnswer is an answer that arrived but failed its check (a refused
// token, a response from another member than the one asked, ...).
type WrongAnswer struct{ msg string }

func (w *WrongAnswer) Error() string { return w.msg }

func Wrongf(format string, args ...any) error {
	return &WrongAnswer{msg: fmt.Sprintf(format, args...)}
}

// RoundResult is what one timed round measured.
type RoundResult struct {
	Round   int
	Label   string // mode or route, e.g. "bounded", "via leader"
	Member  string // member the load was sent to
	Elapsed time.Duration
	OK      int
	Wrong   int
	Errs    int
	// samples holds a few distinct failure messages for the report.
	Samples []string
	// lat holds the latency of every checked answer, sorted.
	Lat []time.Duration
	// cpu is the CPU time each process used during the round, by name;
	// empty where the platform does not tell.
	CPU map[string]time.Duration
	// busy is the fraction of the whole machine's CPU time in use during
	// the round, or -1 when unknown.
	Busy float64
}

// rate is checked answers per second.
func (r *RoundResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// pct returns the p-th Percentile (0 < p <= 100) of the latencies by the
// nearest-rank method, or 0 without samples.
func (r *RoundResult) Pct(p float64) time.Duration {
	return Percentile(r.Lat, p)
}

func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// failures is the count of answers that failed a check plus RPC errors.
func (r *RoundResult) Failures() int { return r.Wrong + r.Errs }

// note records a failure message, keeping only a few distinct ones.
func (r *RoundResult) Note(msg string) {
	if len(r.Samples) < 5 && !slices.Contains(r.Samples, msg) {
		r.Samples = append(r.Samples, msg)
	}
}

// worker is one client's tally; each goroutine owns one, merged after the
// round so the hot loop shares nothing.
type worker struct {
	Lat     []time.Duration
	OK      int
	Wrong   int
	Errs    int
	Samples []string
}

// RunRound runs clients closed-loop clients calling do until d has passed,
// then waits for the requests in flight. Latency is measured per request
// around do, so it includes the client's own gRPC work: on a shared machine
// that is part of what a caller sees.
func RunRound(ctx context.Context, clients int, d time.Duration, do Op) RoundResult {
	start := time.Now()
	end := start.Add(d)
	rctx, cancel := context.WithDeadline(ctx, end.Add(Grace))
	defer cancel()
	ws := make([]worker, clients)
	var wg sync.WaitGroup
	for i := range ws {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := &ws[i]
			w.Lat = make([]time.Duration, 0, 1<<14)
			for seq := 0; rctx.Err() == nil; seq++ {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := do(rctx, i, seq)
				dt := time.Since(t0)
				var wa *WrongAnswer
				switch {
				case err == nil:
					w.OK++
					w.Lat = append(w.Lat, dt)
				case errors.As(err, &wa):
					w.Wrong++
					w.Note(wa.msg)
				default:
					w.Errs++
					w.Note(status.Code(err).String() + ": " + status.Convert(err).Message())
				}
			}
		}(i)
	}
	wg.Wait()
	res := RoundResult{Elapsed: time.Since(start)}
	n := 0
	for i := range ws {
		n += len(ws[i].Lat)
	}
	res.Lat = make([]time.Duration, 0, n)
	for i := range ws {
		w := &ws[i]
		res.OK += w.OK
		res.Wrong += w.Wrong
		res.Errs += w.Errs
		res.Lat = append(res.Lat, w.Lat...)
		for _, s := range w.Samples {
			res.Note(s)
		}
	}
	slices.Sort(res.Lat)
	return res
}

func (w *worker) Note(msg string) {
	if len(w.Samples) < 5 && !slices.Contains(w.Samples, msg) {
		w.Samples = append(w.Samples, msg)
	}
}

// ABBA returns the two items in order for odd rounds and swapped for even
// ones, so rounds of two modes alternate A B, B A, A B ... and noise or
// drift over a run falls on both alike.
func ABBA[T any](items []T, round int) []T {
	if round%2 == 1 {
		return items
	}
	return []T{items[1], items[0]}
}
