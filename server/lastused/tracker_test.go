package lastused

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// store is an in-memory applied state: what a RecordLastUsed entry would
// do when applied (max per token).
type store struct {
	mu sync.Mutex
	m  map[string]int64
}

func (s *store) stored(id string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	return v, ok
}

func (s *store) apply(r *raftstorev1.RecordLastUsed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range r.GetUses() {
		if cur, ok := s.m[u.GetId()]; ok && u.GetUnixNano() > cur {
			s.m[u.GetId()] = u.GetUnixNano()
		}
	}
}

func TestRecordKeepsMaxUnderConcurrency(t *testing.T) {
	st := &store{m: map[string]int64{"a": 0, "b": 0}}
	tr := New(Config{Stored: st.stored, MaxPending: 10})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 1; i <= 1000; i++ {
				tr.Record("a", int64(i*8+g), 0)
				tr.Record("b", int64(i), 0)
			}
		}(g)
	}
	// Flushes racing with the writers must not lose the maximum.
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			default:
				tr.collect()
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-flushed
	got := map[string]int64{}
	for _, u := range tr.collect() {
		got[u.GetId()] = u.GetUnixNano()
	}
	if got["a"] != 1000*8+7 || got["b"] != 1000 {
		t.Fatalf("pending maxima %v, want a=%d b=1000", got, 1000*8+7)
	}
}

func TestGranularityAndRetirement(t *testing.T) {
	st := &store{m: map[string]int64{"a": 0}}
	tr := New(Config{Stored: st.stored, Granularity: 100})
	tr.Record("a", 1000, 0)
	tr.Record("a", 1050, 0) // within granularity of the pending 1000: not recorded
	uses := tr.collect()
	if len(uses) != 1 || uses[0].GetUnixNano() != 1000 {
		t.Fatalf("pending %v, want a=1000", uses)
	}
	st.apply(&raftstorev1.RecordLastUsed{Uses: uses})
	if n := len(tr.collect()); n != 0 || tr.Stats().Pending != 0 {
		t.Fatalf("applied use still pending (%d, stats %+v)", n, tr.Stats())
	}
	tr.Record("a", 1099, 1000) // within granularity of the stored value
	if n := len(tr.collect()); n != 0 {
		t.Fatal("use within granularity of the stored value was recorded")
	}
	tr.Record("a", 1100, 1000)
	if uses := tr.collect(); len(uses) != 1 || uses[0].GetUnixNano() != 1100 {
		t.Fatalf("use past granularity not recorded: %v", uses)
	}
}

func TestPendingIsBounded(t *testing.T) {
	st := &store{m: map[string]int64{}}
	tr := New(Config{Stored: st.stored, MaxPending: 3})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		st.m[id] = 0
		tr.Record(id, 10, 0)
	}
	tr.Record("a", 20, 0) // an existing entry still takes newer times
	s := tr.Stats()
	if s.Pending != 3 || s.Dropped != 2 {
		t.Fatalf("stats %+v, want 3 pending and 2 dropped", s)
	}
	for _, u := range tr.collect() {
		if u.GetId() == "a" && u.GetUnixNano() != 20 {
			t.Fatalf("a = %d, want 20", u.GetUnixNano())
		}
	}
}

// TestFollowerResendsUntilApplied drives Run as a follower whose first
// reports fail (no leader): the use stays pending and arrives once the
// leader answers.
func TestFollowerResendsUntilApplied(t *testing.T) {
	st := &store{m: map[string]int64{"a": 0}}
	var attempts atomic.Int32
	delivered := make(chan struct{})
	var once sync.Once
	tr := New(Config{
		Interval: 5 * time.Millisecond, Stored: st.stored, IsLeader: func() bool { return false },
		Report: func(_ context.Context, r *raftstorev1.RecordLastUsed) error {
			if attempts.Add(1) < 3 {
				return context.DeadlineExceeded
			}
			st.apply(r)
			once.Do(func() { close(delivered) })
			return nil
		},
	})
	tr.Record("a", 42, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	select {
	case <-delivered:
	case <-time.After(5 * time.Second):
		t.Fatal("use never delivered")
	}
	cancel()
	<-done
	if v, _ := st.stored("a"); v != 42 {
		t.Fatalf("stored %d, want 42", v)
	}
	if f := tr.Stats().Failures; f < 2 {
		t.Fatalf("failures %d, want the 2 failed reports counted", f)
	}
}

func BenchmarkRecordHotToken(b *testing.B) {
	st := &store{m: map[string]int64{"a": 0}}
	tr := New(Config{Stored: st.stored, Granularity: time.Second})
	now := time.Now().UnixNano()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Record("a", now, 0)
		}
	})
}
