// Command tsbench is tokenstore's load generator. It builds the binaries,
// starts a three-member cluster of real processes on 127.0.0.1 (data in a
// temporary directory, fsync on as in production), creates tokens and then
// measures:
//
//   - gRPC Authenticate at a follower, bounded against linearizable reads,
//     with the same client concurrency;
//   - CreateToken through the leader and through a follower (which forwards
//     to the leader).
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
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
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
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case c.tokens < 1, c.concurrency < 1, c.conns < 1, c.rounds < 1, c.writeConcurrency < 1:
		return c, errors.New("-tokens, -concurrency, -conns, -rounds and -write-concurrency must be at least 1")
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.warmup < 0:
		return c, errors.New("-warmup must not be negative")
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
	pool     *connPool
	procs    *procSet
	leader   *harness.Member // at the start
	follower *harness.Member // authentications go here
	set      *tokenSet
	// failed counts wrong answers and errors over every phase.
	failed int
}

// run does the whole benchmark. Every resource it makes (temp dirs,
// processes, connections, goroutines) is gone when it returns.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	fmt.Fprintf(out, "tsbench  tokenstore load generator\n")
	model := cpuModel()
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
	c, err := buildCluster(out, tmp)
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
	b := &bench{cfg: cfg, out: out, c: c, pool: &connPool{n: cfg.conns, conns: map[string][]*grpc.ClientConn{}}}
	defer b.pool.close()
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
	writeSum, err := b.writePhase(ctx)
	if err != nil {
		return err
	}
	printSummary(out, b.follower.Name, authSum, writeSum, b.failed)
	if b.failed > 0 {
		return fmt.Errorf("%d requests failed their check or returned an error", b.failed)
	}
	return nil
}

// buildCluster builds the binaries from the module around the working
// directory into dir/bin and prepares (does not start) a three-member
// cluster with data under dir/data, all on 127.0.0.1.
func buildCluster(out io.Writer, dir string) (*harness.Cluster, error) {
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
	c, err := harness.New(bin, data, harness.Options{Size: 3})
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

	b.procs = &procSet{names: []string{"tsbench"}, pids: map[string]int{"tsbench": 0}}
	var notes []string
	for _, m := range b.c.Members {
		pid, err := findMemberPID(m.DataDir)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: cpu n/a (%v)", m.Name, err))
			continue
		}
		b.procs.names = append(b.procs.names, m.Name)
		b.procs.pids[m.Name] = pid
		notes = append(notes, fmt.Sprintf("%s pid %d", m.Name, pid))
	}
	fmt.Fprintf(b.out, "cluster  3 members on 127.0.0.1, fsync on, leader %s; authentications go to follower %s (%s)\n",
		b.leader.Name, b.follower.Name, b.follower.ClientAddr)
	fmt.Fprintf(b.out, "         %s\n", strings.Join(notes, ", "))

	fmt.Fprintf(b.out, "setup    creating %d tokens via leader %s ... ", b.cfg.tokens, b.leader.Name)
	t0 := time.Now()
	clients, err := b.pool.tokens(b.leader)
	if err != nil {
		return err
	}
	if b.set, err = createTokens(ctx, clients, b.leader.Name, b.cfg.tokens, b.cfg.writeConcurrency); err != nil {
		fmt.Fprintln(b.out)
		return err
	}
	fmt.Fprintf(b.out, "done in %v\n", time.Since(t0).Round(time.Millisecond))
	auth, err := b.pool.auth(b.follower)
	if err != nil {
		return err
	}
	// One linearizable read makes the follower apply everything committed,
	// so no bounded read below can miss a token that was just created.
	r, err := auth[0].Authenticate(ctx, &tokenstorev1.AuthenticateRequest{
		Token: b.set.bearers[len(b.set.bearers)-1], Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
	})
	if err != nil || !r.GetAuthenticated() {
		return fmt.Errorf("follower %s does not accept the last token created (err %v, reason %v)", b.follower.Name, err, r.GetReason())
	}
	return nil
}

// authPhase runs the warm-up and the alternating bounded and linearizable
// Authenticate rounds at the follower, and prints their table.
func (b *bench) authPhase(ctx context.Context) ([]modeSummary, error) {
	clients, err := b.pool.auth(b.follower)
	if err != nil {
		return nil, err
	}
	if b.cfg.warmup > 0 {
		w := runRound(ctx, b.cfg.concurrency, b.cfg.warmup, authOp(clients, b.set, bounded, b.follower.Name))
		fmt.Fprintf(b.out, "warm-up  %v bounded at %s: %d authentications, %d wrong, %d errors%s\n",
			b.cfg.warmup, b.follower.Name, w.ok, w.wrong, w.errs, sampleText(&w))
		b.failed += w.failures()
	}
	modes := []readMode{bounded, linearizable}
	var rounds []roundResult
	for r := 1; r <= b.cfg.rounds && ctx.Err() == nil; r++ {
		for _, mode := range abba(modes, r) {
			before := b.procs.snap()
			res := runRound(ctx, b.cfg.concurrency, b.cfg.duration, authOp(clients, b.set, mode, b.follower.Name))
			b.procs.fill(&res, before, b.procs.snap())
			res.round, res.label, res.member = r, mode.name, b.follower.Name
			rounds = append(rounds, res)
			b.failed += res.failures()
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if l, err := currentLeader(ctx, b.c); err == nil && l != b.leader {
		fmt.Fprintf(b.out, "note     leadership moved from %s to %s during the authentication rounds\n", b.leader.Name, l.Name)
	}
	labels := []string{bounded.name, linearizable.name}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "Authenticate at follower %s: %d clients over %d connections, %v per round, %d tokens in turn\n",
		b.follower.Name, b.cfg.concurrency, b.cfg.conns, b.cfg.duration, len(b.set.bearers))
	printRounds(b.out, "mode", "auth/s", rounds, b.procs.names)
	sum := summarize(rounds, labels)
	printMedians(b.out, "mode", "auth/s", sum)
	printCPUPerOp(b.out, "authentication", rounds, b.procs.names, labels)
	return sum, nil
}

// writePhase runs the alternating CreateToken rounds via the leader and via
// a follower, and prints their table. The leader is looked up again each
// round so "via leader" stays true even if leadership moved.
func (b *bench) writePhase(ctx context.Context) ([]modeSummary, error) {
	routes := []string{"via leader", "via follower"}
	var rounds []roundResult
	for r := 1; r <= b.cfg.rounds && ctx.Err() == nil; r++ {
		for _, route := range abba(routes, r) {
			ldr, err := currentLeader(ctx, b.c)
			if err != nil {
				return nil, fmt.Errorf("find leader for write round %d: %w", r, err)
			}
			target, other := ldr, b.c.Followers(ldr)[0]
			if route == "via follower" {
				target, other = other, ldr
			}
			clients, err := b.pool.tokens(target)
			if err != nil {
				return nil, err
			}
			verify, err := b.pool.auth(other)
			if err != nil {
				return nil, err
			}
			last := make([]string, b.cfg.writeConcurrency)
			tag := fmt.Sprintf("r%d-%s", r, strings.ReplaceAll(route, " ", "-"))
			before := b.procs.snap()
			res := runRound(ctx, b.cfg.writeConcurrency, b.cfg.duration, createOp(clients, target.Name, tag, last))
			b.procs.fill(&res, before, b.procs.snap())
			res.round, res.label, res.member = r, route, target.Name
			verifyCreated(ctx, verify[0], other.Name, last, &res)
			rounds = append(rounds, res)
			b.failed += res.failures()
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	fmt.Fprintln(b.out)
	fmt.Fprintf(b.out, "CreateToken: %d clients over %d connections, %v per round, fsync on; the last token of every client is then verified (linearizable) at another member\n",
		b.cfg.writeConcurrency, b.cfg.conns, b.cfg.duration)
	printRounds(b.out, "route", "creates/s", rounds, b.procs.names)
	sum := summarize(rounds, routes)
	printMedians(b.out, "route", "creates/s", sum)
	printCPUPerOp(b.out, "create", rounds, b.procs.names, routes)
	return sum, nil
}

// currentLeader asks the cluster for its leader, giving up after the time
// an election plus a few retries take.
func currentLeader(ctx context.Context, c *harness.Cluster) (*harness.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.Leader(ctx)
}

// abba returns the two items in order for odd rounds and swapped for even
// ones.
func abba[T any](items []T, round int) []T {
	if round%2 == 1 {
		return items
	}
	return []T{items[1], items[0]}
}

// checkLoopback refuses to benchmark a member not on 127.0.0.1: this tool
// must never send load elsewhere.
func checkLoopback(m *harness.Member) error {
	host, _, err := net.SplitHostPort(m.ClientAddr)
	if err != nil {
		return fmt.Errorf("member %s address %q: %w", m.Name, m.ClientAddr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("member %s listens on %s, not 127.0.0.1: refusing to send load there", m.Name, m.ClientAddr)
	}
	return nil
}
