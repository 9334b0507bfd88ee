package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// scaleResult is issue 9 (5) for one system.
type scaleResult struct {
	System    string  `json:"system"`
	Tokens    int     `json:"tokens"`
	LoadSecs  float64 `json:"load_s"`
	LoadRate  float64 `json:"load_per_s"`
	RSSMiB    []int64 `json:"rss_mib"`     // per member, after loading
	DataMiB   []int64 `json:"data_mib"`    // per member's data directory
	Restart   float64 `json:"restart_s"`   // SIGKILL, start, first read served
	CatchUp   float64 `json:"catch_up_s"`  // new member started to first read of the last token
	NewRSSMiB int64   `json:"new_rss_mib"` // the new member's RSS once caught up
}

func rssMiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb >> 10
		}
	}
	return -1
}

func dirMiB(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n >> 20
}

// load runs n calls of do with conc workers, printing progress every
// tenth, and returns the elapsed time.
func load(ctx context.Context, out io.Writer, what string, n, conc int, do func(ctx context.Context, w, i int) error) (time.Duration, error) {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	t0 := time.Now()
	step := int64(max(1, n/10))
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var err error
				for try := 0; try < 5; try++ { // a refused (overloaded) or timed-out write is retried
					rctx, cancel := context.WithTimeout(ctx, lg.Grace)
					err = do(rctx, w, i)
					cancel()
					if err == nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s %d: %w", what, i, err)
					}
					mu.Unlock()
					return
				}
				if d := done.Add(1); d%step == 0 {
					fmt.Fprintf(out, "         %s: %d of %d after %v\n", what, d, n, time.Since(t0).Round(time.Second))
				}
			}
		}(w)
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return time.Since(t0), ctx.Err()
}

// pollUntil calls ok every 20 ms until it reports true, and returns how
// long that took from t0.
func pollUntil(ctx context.Context, t0 time.Time, limit time.Duration, ok func(context.Context) bool) (time.Duration, error) {
	for time.Since(t0) < limit {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		good := ok(qctx)
		cancel()
		if good {
			return time.Since(t0), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("not done after %v", limit)
}

// scalePhase is issue 9 (5), one system after the other (each alone on
// the machine while measured): store cfg.scaleTokens tokens, one raft
// entry each (CreateToken; etcd Put), then measure resident memory,
// restart to first read, and a new member's catch-up by snapshot (both
// systems snapshot every 10,000 entries by default, so a million entries
// leave the new member far behind the compacted log).
func scalePhase(ctx context.Context, cfg config, out io.Writer, bin, etcdBin, tmp string, res *results) error {
	fmt.Fprintln(out)
	fmt.Fprintf(out, "(5) scale: %d tokens per system, loaded with %d concurrent writes at the leader\n", cfg.scaleTokens, cfg.scaleConcurrency)
	r, err := scaleTokenstore(ctx, cfg, out, bin, filepath.Join(tmp, "scale-tokenstore"))
	if err != nil {
		return fmt.Errorf("tokenstore scale: %w", err)
	}
	res.Scale = append(res.Scale, r)
	os.RemoveAll(filepath.Join(tmp, "scale-tokenstore"))
	r, err = scaleEtcd(ctx, cfg, out, etcdBin, filepath.Join(tmp, "scale-etcd"))
	if err != nil {
		return fmt.Errorf("etcd scale: %w", err)
	}
	res.Scale = append(res.Scale, r)
	tw := newTable(out)
	fmt.Fprintln(tw, "system\ttokens\tload\tload/s\tRSS per member (MiB)\tdata dir (MiB)\trestart to first read\tnew member catch-up\tnew member RSS (MiB)\t")
	for _, s := range res.Scale {
		fmt.Fprintf(tw, "%s\t%d\t%.0fs\t%s\t%v\t%v\t%.2fs\t%.2fs\t%d\t\n", s.System, s.Tokens, s.LoadSecs, lg.FmtRate(s.LoadRate), s.RSSMiB, s.DataMiB, s.Restart, s.CatchUp, s.NewRSSMiB)
	}
	tw.Flush()
	return nil
}

func scaleTokenstore(ctx context.Context, cfg config, out io.Writer, bin, dir string) (scaleResult, error) {
	r := scaleResult{System: "tokenstore", Tokens: cfg.scaleTokens}
	c, err := harness.New(bin, dir, harness.Options{Size: 3})
	if err != nil {
		return r, err
	}
	defer c.Stop()
	if err := c.StartAll(); err != nil {
		return r, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitReady(sctx); err != nil {
		return r, err
	}
	leader, err := c.Leader(sctx)
	if err != nil {
		return r, err
	}
	pool := lg.NewConnPool(8)
	defer pool.Close()
	tok, err := pool.Tokens(leader)
	if err != nil {
		return r, err
	}
	bearers := make([]string, cfg.scaleTokens)
	took, err := load(ctx, out, "tokenstore creates", cfg.scaleTokens, cfg.scaleConcurrency, func(ctx context.Context, w, i int) error {
		resp, err := tok[w%len(tok)].CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
			User: &tokenstorev1.UserInfo{Username: "scale-user-" + strconv.Itoa(i), Groups: []string{"bench"}}})
		if err == nil {
			bearers[i] = resp.GetBearerToken()
		}
		return err
	})
	if err != nil {
		return r, err
	}
	r.LoadSecs, r.LoadRate = took.Seconds(), float64(cfg.scaleTokens)/took.Seconds()
	lastBearer := bearers[len(bearers)-1]
	bearers = nil
	// Each poll dials anew: a kept connection to a restarting member would
	// wait out gRPC's reconnect backoff (about a second) and blur the time.
	readAt := func(m *harness.Member, c tokenstorev1.ReadConsistency) func(context.Context) bool {
		return func(ctx context.Context) bool {
			conn, err := m.Dial()
			if err != nil {
				return false
			}
			defer conn.Close()
			a, err := tokenstorev1.NewAuthServiceClient(conn).Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: lastBearer, Consistency: c})
			return err == nil && a.GetAuthenticated() && a.GetHeader().GetMember() == m.Name
		}
	}
	for _, m := range c.Members {
		if _, err := pollUntil(ctx, time.Now(), 5*time.Minute, readAt(m, tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE)); err != nil {
			return r, fmt.Errorf("%s never served the last token: %w", m.Name, err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, m := range c.Members {
		r.RSSMiB = append(r.RSSMiB, rssMiB(m.Pid()))
		r.DataMiB = append(r.DataMiB, dirMiB(m.DataDir))
	}
	fmt.Fprintf(out, "         tokenstore: RSS %v MiB, data %v MiB\n", r.RSSMiB, r.DataMiB)
	f := c.Followers(leader)[0]
	c.Kill(f)
	t0 := time.Now()
	if err := c.Start(f); err != nil {
		return r, err
	}
	d, err := pollUntil(ctx, t0, 5*time.Minute, readAt(f, tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED))
	if err != nil {
		return r, fmt.Errorf("restarted %s: %w", f.Name, err)
	}
	r.Restart = d.Seconds()
	fmt.Fprintf(out, "         tokenstore: %s restarted, first read after %v\n", f.Name, d.Round(time.Millisecond))

	n4, err := c.NewMember("n4")
	if err != nil {
		return r, err
	}
	actx, acancel := context.WithTimeout(ctx, time.Minute)
	_, err = leader.Cluster.AddMember(actx, &tokenstorev1.AddMemberRequest{Name: n4.Name, PeerAddress: n4.AdvertisePeer})
	acancel()
	if err != nil {
		return r, fmt.Errorf("add member: %w", err)
	}
	n4.Flags = []string{"--initial-cluster-state", "existing", "--initial-cluster", leader.Name + "=" + leader.AdvertisePeer + "," + n4.Name + "=" + n4.AdvertisePeer}
	t0 = time.Now()
	if err := c.Start(n4); err != nil {
		return r, err
	}
	d, err = pollUntil(ctx, t0, 10*time.Minute, readAt(n4, tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED))
	if err != nil {
		return r, fmt.Errorf("new member: %w\n%s", err, c.LogTails(10))
	}
	r.CatchUp = d.Seconds()
	r.NewRSSMiB = rssMiB(n4.Pid())
	return r, nil
}

func scaleEtcd(ctx context.Context, cfg config, out io.Writer, etcdBin, dir string) (scaleResult, error) {
	r := scaleResult{System: "etcd", Tokens: cfg.scaleTokens}
	c, err := newEtcdCluster(etcdBin, dir, 3)
	if err != nil {
		return r, err
	}
	defer c.stop()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.startAll(sctx); err != nil {
		return r, err
	}
	leader, err := c.leader(sctx)
	if err != nil {
		return r, err
	}
	var clis []*clientv3.Client
	for i := 0; i < 8; i++ {
		cli, err := c.tls.newClient(leader.ClientAddr)
		if err != nil {
			return r, err
		}
		defer cli.Close()
		clis = append(clis, cli)
	}
	var lastKey string
	var lastMu sync.Mutex
	took, err := load(ctx, out, "etcd puts", cfg.scaleTokens, cfg.scaleConcurrency, func(ctx context.Context, w, i int) error {
		id, _, val, err := newRecord("scale-user-" + strconv.Itoa(i))
		if err != nil {
			return err
		}
		if _, err := clis[w%len(clis)].Put(ctx, "tokens/"+id, string(val)); err != nil {
			return err
		}
		if i == cfg.scaleTokens-1 {
			lastMu.Lock()
			lastKey = "tokens/" + id
			lastMu.Unlock()
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.LoadSecs, r.LoadRate = took.Seconds(), float64(cfg.scaleTokens)/took.Seconds()
	readAt := func(m *etcdMember) func(context.Context) bool {
		return func(ctx context.Context) bool {
			cli, err := c.tls.newClient(m.ClientAddr)
			if err != nil {
				return false
			}
			defer cli.Close()
			g, err := cli.Get(ctx, lastKey, clientv3.WithSerializable())
			return err == nil && len(g.Kvs) == 1
		}
	}
	for _, m := range c.Members {
		if _, err := pollUntil(ctx, time.Now(), 5*time.Minute, readAt(m)); err != nil {
			return r, fmt.Errorf("%s never served the last key: %w", m.Name, err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, m := range c.Members {
		r.RSSMiB = append(r.RSSMiB, rssMiB(m.pid()))
		r.DataMiB = append(r.DataMiB, dirMiB(m.DataDir))
	}
	fmt.Fprintf(out, "         etcd: RSS %v MiB, data %v MiB\n", r.RSSMiB, r.DataMiB)
	f := c.followers(leader)[0]
	f.kill()
	t0 := time.Now()
	if err := c.start(f); err != nil {
		return r, err
	}
	d, err := pollUntil(ctx, t0, 5*time.Minute, readAt(f))
	if err != nil {
		return r, fmt.Errorf("restarted %s: %w", f.Name, err)
	}
	r.Restart = d.Seconds()
	fmt.Fprintf(out, "         etcd: %s restarted, first read after %v\n", f.Name, d.Round(time.Millisecond))

	e4, err := c.newMember("e4")
	if err != nil {
		return r, err
	}
	// etcd refuses a member add until every member has been healthy for
	// a while (strict reconfiguration check), as after the restart above.
	for try := 0; ; try++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := leader.cli.MemberAdd(actx, []string{peerURL(e4.PeerAddr)})
		cancel()
		if err == nil {
			break
		}
		if try == 60 || ctx.Err() != nil {
			return r, fmt.Errorf("member add: %w", err)
		}
		time.Sleep(time.Second)
	}
	c.initial += ",e4=" + peerURL(e4.PeerAddr)
	e4.flags = []string{"--initial-cluster-state", "existing"}
	t0 = time.Now()
	if err := c.start(e4); err != nil {
		return r, err
	}
	// An idle etcd 3.7 cluster never lets a member that joined by snapshot
	// serve: applySnapshot advances the apply loop's index but not the
	// server's applied index, so the new member's own registration (its
	// "publish", which gates serving clients) is refused as "too many
	// requests" (committed index more than 5,000 ahead of applied) until
	// some later entry is applied. A production cluster always has writes;
	// one small Put every 50 ms here stands in for them.
	nctx, stopNudge := context.WithCancel(ctx)
	nudged := make(chan struct{})
	go func() {
		defer close(nudged)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-nctx.Done():
				return
			case <-tick.C:
			}
			pctx, cancel := context.WithTimeout(nctx, time.Second)
			_, _ = leader.cli.Put(pctx, "bench/nudge", strconv.Itoa(n))
			cancel()
		}
	}()
	d, err = pollUntil(ctx, t0, 10*time.Minute, readAt(e4))
	stopNudge()
	<-nudged
	if err != nil {
		return r, fmt.Errorf("new member: %w\n%s", err, logTail(e4.LogPath, 15))
	}
	r.CatchUp = d.Seconds()
	r.NewRSSMiB = rssMiB(e4.pid())
	return r, nil
}

// logTail is the last n lines of a member's log, for errors.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
