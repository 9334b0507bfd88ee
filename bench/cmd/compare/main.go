// Command compare runs tokenstore and etcd side by side on this machine, in
// one invocation, and prints the ratios issue 9 asks for: three tokenstore
// processes (cluster-test/harness) and three etcd processes (etcdmember,
// go.etcd.io/etcd/server/v3 embedded, fsync on), all on 127.0.0.1, tokens
// stored in etcd as keys whose values are the same TokenRecord bytes
// tokenstore stores. Both run TLS with client certificates on client and
// peer connections (the harness always does for tokenstore; etcdtls.go
// gives etcd the same), and the output says so.
//
// Phases (-phases, comma separated):
//
//	reads     Authenticate at a follower, tokenstore bounded and linearizable,
//	          against etcd serializable and linearizable Get (+ hash check)
//	lastused  one hot token at 1, 64 and 1,000 clients: tokenstore with its
//	          batched lastUsedAt register against the naive etcd design (Get,
//	          then a Txn comparing the mod revision and putting lastUsedAt)
//	writes    CreateToken/s against etcd Put/s of a record of the same size
//	failover  authentications failed at the surviving members while the
//	          leader is SIGKILLed, and time to the next leader
//	scale     -scale-tokens tokens: resident memory per member, restart to
//	          first read, catch-up time of a new member (a separate, long run:
//	          make bench-scale)
//
// Every pair runs with the same clients and connections, rounds alternate
// (ABBA, or rotating for four modes), and the measuring, CPU accounting and
// tables are tsbench's (cluster-test/cmd/tsbench/loadgen). Run it from
// bench/: go run ./cmd/compare. It removes its processes and temporary
// directories on exit and on SIGINT/SIGTERM. It never sends anything but to
// 127.0.0.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

type config struct {
	phases           map[string]bool
	duration         time.Duration
	rounds           int
	concurrency      int
	conns            int
	tokens           int
	writeClients     []int
	hotClients       []int
	hotRounds        int
	failoverRounds   int
	failoverAfter    time.Duration
	failoverTimeout  time.Duration
	scaleTokens      int
	scaleConcurrency int
	jsonOut          string
	keep             bool
	args             []string
}

func ints(s, flagName string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s %q: want positive numbers separated by commas", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	phases := fs.String("phases", "reads,lastused,writes,failover", "phases to run: reads, lastused, writes, failover, scale")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of one measured round")
	fs.IntVar(&c.rounds, "rounds", 2, "rounds per mode in the reads and writes phases")
	fs.IntVar(&c.concurrency, "concurrency", 64, "closed-loop clients of the reads phase, the same for every mode")
	fs.IntVar(&c.conns, "conns", 4, "gRPC connections (etcd clients) per member the clients are spread over")
	fs.IntVar(&c.tokens, "tokens", 1000, "tokens in each system for the reads phase")
	wc := fs.String("write-clients", "16,64", "client counts of the writes phase")
	hc := fs.String("hot-clients", "1,64,1000", "client counts of the hot-token lastused phase")
	fs.IntVar(&c.hotRounds, "hot-rounds", 2, "rounds per design and client count in the lastused phase")
	fs.IntVar(&c.failoverRounds, "failover-rounds", 2, "leader kills per system")
	fs.DurationVar(&c.failoverAfter, "failover-after", 5*time.Second, "load kept on the survivors after the kill")
	fs.DurationVar(&c.failoverTimeout, "failover-timeout", 2*time.Second, "request timeout during failover: a request still waiting then has failed")
	fs.IntVar(&c.scaleTokens, "scale-tokens", 1_000_000, "tokens stored in each system by the scale phase")
	fs.IntVar(&c.scaleConcurrency, "scale-concurrency", 256, "concurrent creates (Puts) loading the scale phase's tokens")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file (for the chart)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (binaries, data, member logs), e.g. for perf to resolve symbols afterwards")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.writeClients, err = ints(*wc, "write-clients"); err != nil {
		return c, err
	}
	if c.hotClients, err = ints(*hc, "hot-clients"); err != nil {
		return c, err
	}
	c.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "reads", "lastused", "writes", "failover", "scale":
			c.phases[p] = true
		default:
			return c, fmt.Errorf("-phases: unknown phase %q", p)
		}
	}
	if c.duration <= 0 || c.rounds < 1 || c.concurrency < 1 || c.conns < 1 || c.tokens < 1 || c.hotRounds < 1 ||
		c.failoverRounds < 1 || c.failoverAfter <= 0 || c.failoverTimeout <= 0 || c.scaleTokens < 1 || c.scaleConcurrency < 1 {
		return c, errors.New("durations and counts must be positive")
	}
	fs.VisitAll(func(f *flag.Flag) { c.args = append(c.args, fmt.Sprintf("-%s=%s", f.Name, f.Value)) })
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// results is everything measured, for the summary and the JSON file.
type results struct {
	Machine string `json:"machine"`
	Flags   string `json:"flags"`
	// Transport says how both systems' connections were secured.
	Transport string           `json:"transport"`
	Reads     []lg.ModeSummary `json:"-"`
	ReadsOut  []figure         `json:"reads,omitempty"`
	// ReadCPU is each read mode's CPU per authentication, in µs, split
	// into the servers (every member of the system asked) and the load
	// generator: on a saturated two-core machine the throughput ratio is
	// bounded by the sum, so the split says how far the servers differ.
	ReadCPU  map[string]cpuSplit `json:"read_cpu_us,omitempty"`
	Hot      []hotPair           `json:"lastused,omitempty"`
	Writes   []writePair         `json:"writes,omitempty"`
	Failover []failoverRun       `json:"failover,omitempty"`
	Scale    []scaleResult       `json:"scale,omitempty"`
	// Failed counts tokenstore answers that failed a check: must be 0.
	Failed int `json:"tokenstore_failures"`
}

// cpuSplit is CPU per operation in µs.
type cpuSplit struct {
	Servers   float64 `json:"servers"`
	Generator float64 `json:"load_generator"`
}

// splitCPU sums the CPU of the rounds labelled label per checked answer:
// the processes named with prefix (the system's members) and the load
// generator ("compare").
func splitCPU(rs []lg.RoundResult, label, prefix string) cpuSplit {
	per, ops := lg.CPUByProcess(rs, label)
	if ops == 0 {
		return cpuSplit{}
	}
	var servers time.Duration
	for name, d := range per {
		if strings.HasPrefix(name, prefix) {
			servers += d
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(ops) }
	return cpuSplit{Servers: us(servers), Generator: us(per["compare"])}
}

// figure is one mode's medians.
type figure struct {
	Label string  `json:"label"`
	Rate  float64 `json:"rate"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

func toFigure(s lg.ModeSummary) figure {
	return figure{Label: s.Label, Rate: s.Rate, P50: ms(s.P50), P99: ms(s.P99)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// env is the running systems of the side-by-side phases.
type env struct {
	cfg   config
	out   io.Writer
	ts    *harness.Cluster
	et    *etcdCluster
	procs *lg.ProcSet
	pool  *lg.ConnPool
	// etcdClis holds cfg.conns clients per etcd member, by name.
	etcdClis map[string][]*clientv3.Client
	res      *results
}

func (e *env) etcdClients(m *etcdMember) ([]*clientv3.Client, error) {
	if cs, ok := e.etcdClis[m.Name]; ok {
		return cs, nil
	}
	var cs []*clientv3.Client
	for i := 0; i < e.cfg.conns; i++ {
		cli, err := e.et.tls.newClient(m.ClientAddr)
		if err != nil {
			return nil, err
		}
		cs = append(cs, cli)
	}
	e.etcdClis[m.Name] = cs
	return cs, nil
}

func (e *env) close() {
	for _, cs := range e.etcdClis {
		for _, c := range cs {
			c.Close()
		}
	}
	e.pool.Close()
}

// roots finds bench/ (the working directory's module) and the tokenstore
// module above it.
func roots() (benchRoot, tsRoot string, err error) {
	if benchRoot, err = harness.ModuleRoot(); err != nil {
		return "", "", err
	}
	tsRoot = filepath.Dir(benchRoot)
	b, err := os.ReadFile(filepath.Join(tsRoot, "go.mod"))
	if err != nil || !strings.Contains(string(b), "module github.com/tokenstore/tokenstore\n") {
		return "", "", fmt.Errorf("run from inside bench/ of the tokenstore repository (found %s)", benchRoot)
	}
	return benchRoot, tsRoot, nil
}

func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	res := &results{Flags: strings.Join(cfg.args, " "), Transport: transportMode}
	model := lg.CPUModel()
	res.Machine = fmt.Sprintf("%d CPUs (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintln(out, "compare  tokenstore vs etcd, side by side")
	fmt.Fprintf(out, "machine  %s; load generator, tokenstore and etcd share them\n", res.Machine)
	fmt.Fprintf(out, "flags    %s\n", res.Flags)
	fmt.Fprintf(out, "transport %s\n", res.Transport)
	benchRoot, tsRoot, err := roots()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "compare-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(out, "keep     %s (not removed at exit)\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	bin := filepath.Join(tmp, "bin")
	if err := os.Mkdir(bin, 0o700); err != nil {
		return err
	}
	fmt.Fprintf(out, "build    tokenstore (%s) and etcdmember (%s) -> %s\n", tsRoot, benchRoot, bin)
	if err := harness.Build(tsRoot, bin); err != nil {
		return err
	}
	etcdBin, err := buildEtcdMember(benchRoot, bin)
	if err != nil {
		return err
	}

	if cfg.phases["reads"] || cfg.phases["lastused"] || cfg.phases["writes"] || cfg.phases["failover"] {
		if err := sideBySide(ctx, cfg, out, bin, etcdBin, tmp, res); err != nil {
			return err
		}
	}
	if cfg.phases["scale"] {
		if err := scalePhase(ctx, cfg, out, bin, etcdBin, tmp, res); err != nil {
			return err
		}
	}
	printSummary(out, res)
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d tokenstore answers failed their check or returned an error", res.Failed)
	}
	return nil
}

// sideBySide starts both clusters, loads the tokens and runs the
// alternating phases.
func sideBySide(ctx context.Context, cfg config, out io.Writer, bin, etcdBin, tmp string, res *results) (err error) {
	ts, err := harness.New(bin, filepath.Join(tmp, "tokenstore"), harness.Options{Size: 3})
	if err != nil {
		return err
	}
	defer ts.Stop()
	et, err := newEtcdCluster(etcdBin, filepath.Join(tmp, "etcd"), 3)
	if err != nil {
		return err
	}
	defer et.stop()
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "tokenstore logs:\n%s", ts.LogTails(20))
		}
	}()
	if err := ts.StartAll(); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := et.startAll(sctx); err != nil {
		return err
	}
	if err := ts.WaitReady(sctx); err != nil {
		return err
	}
	e := &env{cfg: cfg, out: out, ts: ts, et: et, pool: lg.NewConnPool(cfg.conns), etcdClis: map[string][]*clientv3.Client{}, res: res}
	defer e.close()
	e.procs = &lg.ProcSet{Names: []string{"compare"}, PIDs: map[string]int{"compare": 0}}
	for _, m := range ts.Members {
		e.procs.Names = append(e.procs.Names, m.Name)
		e.procs.PIDs[m.Name] = m.Pid()
	}
	for _, m := range et.Members {
		e.procs.Names = append(e.procs.Names, m.Name)
		e.procs.PIDs[m.Name] = m.pid()
	}
	fmt.Fprintf(out, "clusters tokenstore n1-n3 (fsync on, --last-used-interval 1s, default --max-inflight) and etcd e1-e3 (fsync on), all on 127.0.0.1, both TLS with client certificates\n")
	if cfg.phases["reads"] {
		if err := e.readsPhase(sctx, ctx); err != nil {
			return err
		}
	}
	if cfg.phases["lastused"] {
		if err := e.lastUsedPhase(ctx); err != nil {
			return err
		}
	}
	if cfg.phases["writes"] {
		if err := e.writesPhase(ctx); err != nil {
			return err
		}
	}
	if cfg.phases["failover"] {
		if err := e.failoverPhase(ctx); err != nil {
			return err
		}
	}
	return nil
}
