// Command tsbench is tokenstore's load generator. It builds the binaries,
// starts a three-member cluster of real processes on 127.0.0.1 (data in a
// temporary directory, fsync on as in production), creates tokens and then
// measures:
//
//   - gRPC Authenticate at a follower, bounded against linearizable reads,
//     with the same client concurrency;
//   - CreateToken through the leader and through a follower (which forwards
//     to the leader);
//   - lastUsedAt (issue 3, -last-used, on by default): Authenticate at a
//     follower with tracking on against a second cluster started with
//     --last-used-interval 0 (-onoff-rounds short rounds each, before the
//     write rounds so both clusters hold the same tokens), and, on one hot token
//     at 1, 64 and 1,000 clients, the batched register against the naive
//     design of one replicated compare-and-swap per authentication
//     (loadgen.NaiveCASOp) through that second cluster's raft group;
//   - the webhooks (-webhooks, on by default), all at the follower:
//     TokenReview v1 over HTTP keep-alive against gRPC Authenticate, and
//     repeated authentications of Rancher-imported scrypt tokens against
//     native ones (issue 5); SubjectAccessReview v1 over HTTP keep-alive
//     against gRPC Authorize with 10,000 bindings and 1,000 roles loaded
//     (issue 7).
//
// The measuring machinery is package loadgen, shared with the etcd
// comparison in bench/ (its own module).
//
// Rounds of the two modes alternate, in ABBA order (A B, B A, A B, ...), so
// that noise on a small shared machine, and any drift over the run, falls on
// both modes alike; the report gives every round and the median over rounds.
// Every answer is checked (authenticated, by the member asked, as the right
// user); refused answers and RPC errors are counted and make the exit status
// non-zero. It never sends anything but to 127.0.0.1.
//
// Run it from the module (it finds go.mod above the working directory):
//
//	go run ./cluster-test/cmd/tsbench -duration 5s -rounds 3
//
// On SIGINT or SIGTERM it stops the load, kills the cluster and removes its
// temporary directories.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// authTarget is the throughput target for bounded authentications
// at one follower.
const authTarget = 20_000

// config is the command line.
type config struct {
	tokens           int
	concurrency      int
	conns            int
	duration         time.Duration
	rounds           int
	writeConcurrency int
	warmup           time.Duration
	cpuProfile       string
	lastUsed         bool
	hotClients       []int
	hotRounds        int
	memberFlags      []string
	onOffRounds      int
	onOffDuration    time.Duration
	webhooks         bool
	importedTokens   int
	rbacRoles        int
	rbacBindings     int
	args             []string // as given, for the report
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("tsbench", flag.ContinueOnError)
	fs.IntVar(&c.tokens, "tokens", 1000, "tokens to create before the authentication rounds (each round cycles through them)")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent Authenticate clients (closed loop), the same for both read modes")
	fs.IntVar(&c.conns, "conns", 4, "gRPC connections per member the clients are spread over")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of one measured round")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds per mode (and per write route); modes alternate")
	fs.IntVar(&c.writeConcurrency, "write-concurrency", 16, "concurrent CreateToken clients, the same via leader and via follower")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unreported bounded-read load before the first round (connections, caches); 0 skips it")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this load generator (not the servers) over the warm-up and the measured rounds to this file")
	fs.BoolVar(&c.lastUsed, "last-used", true, "also measure lastUsedAt tracking on vs off, and the batched register vs a naive CAS per authentication on one hot token (starts a second cluster)")
	hot := fs.String("hot-clients", "1,64,1000", "client counts of the hot-token comparison")
	fs.IntVar(&c.hotRounds, "hot-rounds", 2, "rounds per design and client count in the hot-token comparison")
	fs.IntVar(&c.onOffRounds, "onoff-rounds", 30, "rounds per mode of the lastUsedAt tracking on vs off comparison (many short ones: the difference sought is 5%, and short alternating rounds let bursts of other load fall on both modes)")
	fs.DurationVar(&c.onOffDuration, "onoff-duration", time.Second, "length of one round of the tracking on vs off comparison")
	fs.BoolVar(&c.webhooks, "webhooks", true, "also measure TokenReview and SubjectAccessReview over HTTP and imported scrypt tokens at the follower")
	fs.IntVar(&c.importedTokens, "imported-tokens", 100, "Rancher scrypt tokens imported for the imported-vs-native comparison (at most -tokens; each costs one scrypt to make and one at its first use)")
	fs.IntVar(&c.rbacRoles, "rbac-roles", 1000, "ClusterRoles of the SubjectAccessReview policy")
	fs.IntVar(&c.rbacBindings, "rbac-bindings", 10000, "bindings of the SubjectAccessReview policy")
	mf := fs.String("member-flags", "", "extra tokenstore flags for every member of the measured cluster, space separated (e.g. \"--max-inflight=64\")")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case c.tokens < 1, c.concurrency < 1, c.conns < 1, c.rounds < 1, c.writeConcurrency < 1:
		return c, errors.New("-tokens, -concurrency, -conns, -rounds and -write-concurrency must be at least 1")
	case c.hotRounds < 1, c.onOffRounds < 1:
		return c, errors.New("-hot-rounds and -onoff-rounds must be at least 1")
	case c.importedTokens < 1, c.rbacRoles < 1, c.rbacBindings < 1:
		return c, errors.New("-imported-tokens, -rbac-roles and -rbac-bindings must be at least 1")
	case c.duration <= 0, c.onOffDuration <= 0:
		return c, errors.New("-duration and -onoff-duration must be positive")
	case c.warmup < 0:
		return c, errors.New("-warmup must not be negative")
	}
	c.memberFlags = strings.Fields(*mf)
	for _, f := range strings.Split(*hot, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-hot-clients %q: want positive numbers separated by commas", *hot)
		}
		c.hotClients = append(c.hotClients, n)
	}
	fs.VisitAll(func(f *flag.Flag) {
		c.args = append(c.args, fmt.Sprintf("-%s=%s", f.Name, f.Value))
	})
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tsbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tsbench:", err)
		os.Exit(1)
	}
}

// bench is one benchmark run: the cluster, the connections to it and what
// the phases measured. Its methods run on the main goroutine.
type bench struct {
	cfg      config
	out      io.Writer
	c        *harness.Cluster
	pool     *lg.ConnPool
	procs    *lg.ProcSet
	leader   *harness.Member // at the start
	follower *harness.Member // authentications go here
	set      *lg.TokenSet
	// tmp holds the binaries (tmp/bin) and the clusters' data.
	tmp string
	// failed counts wrong answers and errors over every phase.
	failed int
}

// run does the whole benchmark. Every resource it makes (temp dirs,
// processes, connections, goroutines) is gone when it returns.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	fmt.Fprintf(out, "tsbench  tokenstore load generator\n")
	model := lg.CPUModel()
	if model == "" {
		model = "cpu model unknown"
	}
	fmt.Fprintf(out, "machine  %d CPUs (%s), %s/%s, %s; the load generator shares them with the three servers\n",
		runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "flags    %s\n", strings.Join(cfg.args, " "))

	tmp, err := os.MkdirTemp("", "tsbench-")
	if err != nil {
		return fmt.Errorf("make temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	c, err := buildCluster(out, tmp, cfg.memberFlags)
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := c.StartAll(); err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	// Log tails explain most failures (ports, data dir, election).
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "member logs:\n%s", c.LogTails(20))
		}
	}()
	b := &bench{cfg: cfg, out: out, c: c, pool: lg.NewConnPool(cfg.conns), tmp: tmp}
	defer b.pool.Close()
	if err := b.setup(ctx); err != nil {
		return err
	}

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	authSum, err := b.authPhase(ctx)
	if err != nil {
		return err
	}
	var luSum *lastUsedSummary
	var off *offCluster
	if cfg.lastUsed {
		if off, err = b.startOffCluster(ctx); err != nil {
			return err
		}
		defer off.stop()
		luSum = &lastUsedSummary{}
		if err := b.onOffPhase(ctx, off, luSum); err != nil {
			return err
		}
	}
	writeSum, err := b.writePhase(ctx)
	if err != nil {
		return err
	}
	if cfg.lastUsed {
		if err := b.hotPhase(ctx, off, luSum); err != nil {
			return err
		}
		// The webhook rounds measure the first cluster alone.
		off.stop()
	}
	var speed *speedSummary
	if cfg.webhooks {
		speed = &speedSummary{}
		for _, phase := range []func(context.Context, *speedSummary) error{b.tokenReviewPhase, b.importedPhase, b.accessReviewPhase} {
			if err := phase(ctx, speed); err != nil {
				return err
			}
		}
	}
	printSummary(out, b.follower.Name, authSum, writeSum, b.failed)
	printLastUsedSummary(out, luSum)
	printSpeedSummary(out, b.follower.Name, speed)
	if b.failed > 0 {
		return fmt.Errorf("%d requests failed their check or returned an error", b.failed)
	}
	return nil
}

// buildCluster builds the binaries from the module around the working
// directory into dir/bin and prepares (does not start) a three-member
// cluster with data under dir/data, all on 127.0.0.1.
func buildCluster(out io.Writer, dir string, extra []string) (*harness.Cluster, error) {
	root, err := harness.ModuleRoot()
	if err != nil {
		return nil, fmt.Errorf("find module root (run from inside the tokenstore module): %w", err)
	}
	bin := filepath.Join(dir, "bin")
	data := filepath.Join(dir, "data")
	for _, d := range []string{bin, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("make %s: %w", d, err)
		}
	}
	fmt.Fprintf(out, "build    %s/cmd/tokenstore -> %s\n", root, bin)
	if err := harness.Build(root, bin); err != nil {
		return nil, err
	}
	c, err := harness.New(bin, data, harness.Options{Size: 3, Extra: extra})
	if err != nil {
		return nil, fmt.Errorf("prepare cluster: %w", err)
	}
	for _, m := range c.Members {
		if err := checkLoopback(m); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// setup waits for the started cluster, picks the follower under test,
// finds the members' processes for CPU accounting and creates the tokens
// the authentication rounds present.
func (b *bench) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.c.WaitReady(ctx); err != nil {
		return fmt.Errorf("wait for cluster: %w", err)
	}
	var err error
	if b.leader, err = b.c.Leader(ctx); err != nil {
		return fmt.Errorf("find leader: %w", err)
	}
	b.follower = b.c.Followers(b.leader)[0]

	b.procs = &lg.ProcSet{Names: []string{"tsbench"}, PIDs: map[string]int{"tsbench": 0}}
	var notes []string
	for _, m := range b.c.Members {
		pid, err := lg.FindMemberPID(m.DataDir)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: cpu n/a (%v)", m.Name, err))
			continue
		}
		b.procs.Names = append(b.procs.Names, m.Name)
		b.procs.PIDs[m.Name] = pid
		notes = append(notes, fmt.Sprintf("%s pid %d", m.Name, pid))
	}
	fmt.Fprintf(b.out, "cluster  3 members on 127.0.0.1, fsync on, leader %s; authentications go to follower %s (%s)\n",
		b.leader.Name, b.follower.Name, b.follower.ClientAddr)
	fmt.Fprintf(b.out, "         %s\n", strings.Join(notes, ", "))

	fmt.Fprintf(b.out, "setup    creating %d tokens via leader %s ... ", b.cfg.tokens, b.leader.Name)
	t0 := time.Now()
	clients, err := b.pool.Tokens(b.leader)
	if err != nil {
		return err
	}
	if b.set, err = lg.CreateTokens(ctx, clients, b.leader.Name, b.cfg.tokens, b.cfg.writeConcurrency); err != nil {
		fmt.Fprintln(b.out)
		return err
	}
	fmt.Fprintf(b.out, "done in %v\n", time.Since(t0).Round(time.Millisecond))
	auth, err := b.pool.Auth(b.follower)
	if err != nil {
		return err
	}
	// One linearizable read makes the follower apply everything committed,
	// so no bounded read below can miss a token that was just created.
	r, err := auth[0].Authenticate(ctx, &tokenstorev1.AuthenticateRequest{
		Token: b.set.Bearers[len(b.set.Bearers)-1], Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
	})
	if err != nil || !r.GetAuthenticated() {
		return fmt.Errorf("follower %s does not accept the last token created (err %v, reason %v)", b.follower.Name, err, r.GetReason())
	}
	return nil
}

// authPhase runs the warm-up and the alternating bounded and linearizable
// Authenticate rounds at the follower, and prints their table.
func (b *bench) authPhase(ctx context.Context) ([]lg.ModeSummary, error) {
	clients, err := b.pool.Auth(b.follower)
	if err != nil {
		return nil, err
	}
	if b.cfg.warmup > 0 {
		w := lg.RunRound(ctx, b.cfg.concurrency, b.cfg.warmup, lg.AuthOp(clients, b.set, lg.Bounded, b.follower.Name))
		fmt.Fprintf(b.out, "warm-up  %v bounded at %s: %d authentications, %d wrong, %d errors%s\n",
			b.cfg.warmup, b.follower.Name, w.OK, w.Wrong, w.Errs, lg.SampleText(&w))
		b.failed += w.Failures()
	}
	modes := []lg.ReadMode{lg.Bounded, lg.Linearizable}
	var rounds []lg.RoundResult
	for r := 1; r <= b.cfg.rounds && ctx.Err() == nil; r++ {
		for _, mode := range lg.ABBA(modes, r) {
			before := b.procs.Snap()
			res := lg.RunRound(ctx, b.cfg.concurrency, b.cfg.duration, lg.AuthOp(clients, b.set, mode, b.follower.Name))
			b.procs.Fill(&res, before, b.procs.Snap())
			res.Round, res.Label, res.Member = r, mode.Name, b.follower.Name
			rounds = append(rounds, res)
			b.failed += res.Failures()
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if l, err := currentLeader(ctx, b.c); err == nil && l != b.leader {
		fmt.Fprintf(b.out, "note     leadership moved from %s to %s during the authentication rounds\n", b.leader.Name, l.Name)
	}
	labels := []string{lg.Bounded.Name, lg.Linearizable.Name}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "Authenticate at follower %s: %d clients over %d connections, %v per round, %d tokens in turn\n",
		b.follower.Name, b.cfg.concurrency, b.cfg.conns, b.cfg.duration, len(b.set.Bearers))
	lg.PrintRounds(b.out, "mode", "auth/s", rounds, b.procs.Names)
	sum := lg.Summarize(rounds, labels)
	lg.PrintMedians(b.out, "mode", "auth/s", sum)
	lg.PrintCPUPerOp(b.out, "authentication", rounds, b.procs.Names, labels)
	return sum, nil
}

// writePhase runs the alternating CreateToken rounds via the leader and via
// a follower, and prints their table. The leader is looked up again each
// round so "via leader" stays true even if leadership moved.
func (b *bench) writePhase(ctx context.Context) ([]lg.ModeSummary, error) {
	routes := []string{"via leader", "via follower"}
	var rounds []lg.RoundResult
	for r := 1; r <= b.cfg.rounds && ctx.Err() == nil; r++ {
		for _, route := range lg.ABBA(routes, r) {
			ldr, err := currentLeader(ctx, b.c)
			if err != nil {
				return nil, fmt.Errorf("find leader for write round %d: %w", r, err)
			}
			target, other := ldr, b.c.Followers(ldr)[0]
			if route == "via follower" {
				target, other = other, ldr
			}
			clients, err := b.pool.Tokens(target)
			if err != nil {
				return nil, err
			}
			verify, err := b.pool.Auth(other)
			if err != nil {
				return nil, err
			}
			last := make([]string, b.cfg.writeConcurrency)
			tag := fmt.Sprintf("r%d-%s", r, strings.ReplaceAll(route, " ", "-"))
			before := b.procs.Snap()
			res := lg.RunRound(ctx, b.cfg.writeConcurrency, b.cfg.duration, lg.CreateOp(clients, target.Name, tag, last))
			b.procs.Fill(&res, before, b.procs.Snap())
			res.Round, res.Label, res.Member = r, route, target.Name
			lg.VerifyCreated(ctx, verify[0], other.Name, last, &res)
			rounds = append(rounds, res)
			b.failed += res.Failures()
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "CreateToken: %d clients over %d connections, %v per round, fsync on; the last token of every client is then verified (linearizable) at another member\n",
		b.cfg.writeConcurrency, b.cfg.conns, b.cfg.duration)
	lg.PrintRounds(b.out, "route", "creates/s", rounds, b.procs.Names)
	sum := lg.Summarize(rounds, routes)
	lg.PrintMedians(b.out, "route", "creates/s", sum)
	lg.PrintCPUPerOp(b.out, "create", rounds, b.procs.Names, routes)
	return sum, nil
}

// currentLeader asks the cluster for its leader, giving up after the time
// an election plus a few retries take.
func currentLeader(ctx context.Context, c *harness.Cluster) (*harness.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.Leader(ctx)
}

// checkLoopback refuses to benchmark a member not on 127.0.0.1: this tool
// must never send load elsewhere.
func checkLoopback(m *harness.Member) error {
	for _, addr := range []string{m.ClientAddr, m.HTTPAddr} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("member %s address %q: %w", m.Name, addr, err)
		}
		if host != "127.0.0.1" {
			return fmt.Errorf("member %s listens on %s, not 127.0.0.1: refusing to send load there", m.Name, addr)
		}
	}
	return nil
}
