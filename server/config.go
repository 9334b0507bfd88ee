package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/server/clock"
	"github.com/tokenstore/tokenstore/server/oidc"
)

// Config is a member's configuration. Every field is a flag; a flag not
// given on the command line is taken from the environment variable
// TOKENSTORE_<FLAG> (upper case, '-' as '_'), then from the --config file
// (YAML, keys are flag names), then the default.
type Config struct {
	Name                  string
	DataDir               string
	ListenClient          string
	ListenPeer            string
	ListenHTTP            string
	AdvertiseClient       string
	AdvertisePeer         string
	InitialCluster        string
	InitialClusterToken   string
	InitialClusterState   string
	ListenGossip          string
	AdvertiseGossip       string
	Join                  []string
	BootstrapExpect       int
	ForceNewCluster       bool
	CleanupDeadAfter      time.Duration
	TokenRetention        time.Duration
	ReadConsistency       string
	MaxStaleness          time.Duration
	RequestTimeout        time.Duration
	TimeSource            string
	MaxClockCorrection    time.Duration
	ClockOutlierThreshold time.Duration
	TestClockOffset       time.Duration
	// TestFsyncDelay (test only) slows every fsync of the raft log, as a
	// slow disk would (the campaign's slow-disk fault).
	TestFsyncDelay time.Duration
	// TestBootstrapLate (test only) makes a --bootstrap-expect member hold
	// its bootstrap decision until gossip shows the cluster its peers
	// formed without it: the slow-founding-member race, made certain.
	TestBootstrapLate bool
	// TestNoFeatures (test only) makes the member report no optional
	// replicated operations, as a binary from before them does.
	TestNoFeatures      bool
	ShutdownDelay       time.Duration
	SnapshotCount       uint64
	CatchUpEntries      uint64
	TickInterval        time.Duration
	ElectionTicks       int
	MaxRequestBytes     int
	MaxInflight         int
	GCHeapFloorMiB      int
	OverloadRetryAfter  time.Duration
	LastUsedInterval    time.Duration
	LastUsedGranularity time.Duration
	LastUsedMaxPending  int
	JWTLeeway           time.Duration
	LogLevel            string
	LogFormat           string
	SecurityConfig      // config_tls.go
}

// RegisterFlags defines the flags on fs, bound to c, with their defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Name, "name", "default", "member name, unique in the cluster")
	fs.StringVar(&c.DataDir, "data-dir", "", "data directory (default ./<name>.tokenstore)")
	fs.StringVar(&c.ListenClient, "listen-client", "127.0.0.1:23790", "gRPC client API address (AuthService, TokenService, ClusterService, health, reflection)")
	fs.StringVar(&c.ListenPeer, "listen-peer", "127.0.0.1:23800", "raft peer address")
	fs.StringVar(&c.ListenHTTP, "listen-http", "127.0.0.1:23810", "HTTP address (/healthz, /livez, /readyz, /metrics); empty disables")
	fs.StringVar(&c.AdvertiseClient, "advertise-client", "", "client address other members and status report (default --listen-client)")
	fs.StringVar(&c.AdvertisePeer, "advertise-peer", "", "peer address of this member as others reach it (default --listen-peer)")
	fs.StringVar(&c.InitialCluster, "initial-cluster", "", "bootstrap membership, name=host:peerport,... (default: this member alone); ignored once the data directory holds raft state")
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", "tokenstore", "distinguishes clusters bootstrapped with the same member names")
	fs.StringVar(&c.InitialClusterState, "initial-cluster-state", "new", "new: bootstrap with --initial-cluster; existing: join the running cluster those members form (after tokenctl member add)")
	fs.StringVar(&c.ListenGossip, "listen-gossip", "", "gossip (memberlist) address, TCP and UDP; needed with --join")
	fs.StringVar(&c.AdvertiseGossip, "advertise-gossip", "", "gossip address as others reach it (default --listen-gossip)")
	fs.StringSliceVar(&c.Join, "join", nil, "gossip seeds host:port,... (a StatefulSet's headless service name resolves to every pod); a member with an empty data directory joins the cluster it finds")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "with --join and no existing cluster found: bootstrap one new cluster once this many members see each other")
	fs.DurationVar(&c.CleanupDeadAfter, "autopilot-cleanup-dead-after", 0, "the leader removes members that gossip has seen dead for this long (0: never; dead voters then lower the failure tolerance until an operator removes them)")
	fs.DurationVar(&c.TokenRetention, "token-retention", 7*24*time.Hour, "the leader deletes tokens revoked or expired longer ago than this (until then they answer \"revoked\" or \"expired\" and stay listed); 0 keeps them forever")
	fs.BoolVar(&c.ForceNewCluster, "force-new-cluster", false, "disaster recovery: start a one-member cluster from this member's data, removing every other member")
	fs.StringVar(&c.ReadConsistency, "read-consistency", "bounded", "default read consistency: bounded (local state confirmed within --max-staleness) or linearizable (ReadIndex per batch of reads)")
	fs.DurationVar(&c.MaxStaleness, "max-staleness", 5*time.Second, "bounded reads fail closed when this member has not confirmed it is caught up with the leader for this long")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 10*time.Second, "deadline for a request that brings none")
	fs.StringVar(&c.TimeSource, "time-source", "cluster", "time for expiry and other time checks: cluster (this member's clock corrected toward the median of the voters' clocks) or local (this member's clock)")
	fs.DurationVar(&c.MaxClockCorrection, "max-clock-correction", DefaultMaxClockCorrection, "largest distance between this member's clock and cluster time that is corrected; a larger one is not applied, logged as an error and raises tokenstore_clock_correction_refused")
	fs.DurationVar(&c.ClockOutlierThreshold, "clock-outlier-threshold", DefaultClockOutlierThreshold, "a member whose clock is further than this from cluster time is an outlier: a warning, tokenstore_clock_outlier 1, OUTLIER in tokenctl status (0 disables)")
	fs.DurationVar(&c.TestClockOffset, "test-clock-offset", 0, "TEST ONLY: shift this member's clock by this much (e.g. -2m) to simulate a skewed host")
	_ = fs.MarkHidden("test-clock-offset")
	fs.DurationVar(&c.TestFsyncDelay, "test-fsync-delay", 0, "TEST ONLY: add this much to every fsync of the raft log, as a slow disk would")
	_ = fs.MarkHidden("test-fsync-delay")
	fs.BoolVar(&c.TestBootstrapLate, "test-bootstrap-late", false, "TEST ONLY: with --bootstrap-expect, decide to bootstrap only after gossip shows the cluster the other founding members formed")
	_ = fs.MarkHidden("test-bootstrap-late")
	fs.BoolVar(&c.TestNoFeatures, "test-no-features", false, "TEST ONLY: report no optional replicated operations (as a binary from before them), so the leader holds those back")
	_ = fs.MarkHidden("test-no-features")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep answering requests this long after readiness turns false and leadership is handed over, so load balancers stop sending new ones before the listeners close (a few seconds behind a Kubernetes Service)")
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", 10000, "applied entries between snapshots (the log is compacted behind each)")
	fs.Uint64Var(&c.CatchUpEntries, "catch-up-entries", 5000, "entries kept in the log behind each snapshot, so a slightly lagging follower catches up from the log rather than a snapshot")
	fs.DurationVar(&c.TickInterval, "tick-interval", 100*time.Millisecond, "raft tick; heartbeats every tick")
	fs.IntVar(&c.ElectionTicks, "election-ticks", 10, "ticks without a heartbeat before an election")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", 1<<20, "largest client request accepted")
	fs.IntVar(&c.GCHeapFloorMiB, "gc-heap-floor-mib", DefaultGCHeapFloorMiB, "the Go heap may grow to this many MiB before a collection however small the live data (GOGC applies above it; capped at a quarter of the cgroup memory limit): fewer collections under read load at a small data set; 0 disables (docs/operations.md, Memory and the garbage collector)")
	fs.IntVar(&c.MaxInflight, "max-inflight", DefaultMaxInflight, "most client requests (gRPC and HTTP webhooks together) handled at once; beyond it requests are refused at once with RESOURCE_EXHAUSTED / HTTP 429 and a retry hint (health, readiness and /metrics are exempt; raft peer traffic has its own listener); 0 disables the bound")
	fs.DurationVar(&c.OverloadRetryAfter, "overload-retry-after", time.Second, "wait suggested to a refused caller (gRPC RetryInfo and grpc-retry-pushback-ms, HTTP Retry-After), jittered by ±50%")
	fs.DurationVar(&c.LastUsedInterval, "last-used-interval", time.Second, "how often uses are sent to the leader and the leader proposes one lastUsedAt batch; 0 disables lastUsedAt tracking")
	fs.DurationVar(&c.LastUsedGranularity, "last-used-granularity", time.Second, "a use within this of the recorded lastUsedAt is not recorded again")
	fs.IntVar(&c.LastUsedMaxPending, "last-used-max-pending", 100000, "most tokens with unreported uses held in memory; uses of further tokens are dropped and counted")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", oidc.DefaultLeeway, "how far in the future a JWT's nbf and iat may be (clock skew between issuer and cluster); exp gets none; an issuer's leeway overrides it (docs/oidc.md)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "text, json, or auto: text when stderr is a terminal, JSON otherwise (a container, a file, a log collector)")
	c.registerSecurityFlags(fs) // config_tls.go
}

// LoadEnvAndFile fills flags not set on the command line from the
// environment and then from the YAML file at path (if not empty). Unknown
// keys in the file are an error, so a typo is never silently ignored.
func LoadEnvAndFile(fs *pflag.FlagSet, path string) error {
	var file map[string]any
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		// Numbers stay as written (json.Number): through float64, 1048576
		// would become "1.048576e+06", which no integer flag accepts.
		j, err := yaml.YAMLToJSON(b)
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(j))
			dec.UseNumber()
			err = dec.Decode(&file)
		}
		if err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		for k := range file {
			if f := fs.Lookup(k); f == nil || k == "config" {
				return fmt.Errorf("config file %s: unknown setting %q", path, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" {
			return
		}
		env := "TOKENSTORE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", env, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, fileValue(v)); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// fileValue is a --config value as a flag's text: a YAML list (join: [a,
// b]) becomes the comma-separated form list flags take.
func fileValue(v any) string {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// Validate checks the configuration and fills derived defaults.
func (c *Config) Validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "=, \t") {
		return fmt.Errorf("--name %q: must be non-empty without '=', ',' or spaces", c.Name)
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".tokenstore"
	}
	for _, a := range []struct{ flag, v string }{{"listen-client", c.ListenClient}, {"listen-peer", c.ListenPeer}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("--%s %q: %w", a.flag, a.v, err)
		}
	}
	if c.ListenHTTP != "" {
		if _, _, err := net.SplitHostPort(c.ListenHTTP); err != nil {
			return fmt.Errorf("--listen-http %q: %w", c.ListenHTTP, err)
		}
	}
	if c.AdvertiseClient == "" {
		c.AdvertiseClient = c.ListenClient
	}
	if c.AdvertisePeer == "" {
		c.AdvertisePeer = c.ListenPeer
	}
	if len(c.Join) > 0 && c.ListenGossip == "" {
		return errors.New("--join needs --listen-gossip")
	}
	if c.ListenGossip != "" {
		if _, _, err := net.SplitHostPort(c.ListenGossip); err != nil {
			return fmt.Errorf("--listen-gossip %q: %w", c.ListenGossip, err)
		}
	}
	if c.CleanupDeadAfter < 0 || (c.CleanupDeadAfter > 0 && c.ListenGossip == "") {
		return errors.New("--autopilot-cleanup-dead-after needs --listen-gossip and must not be negative")
	}
	if c.TestFsyncDelay < 0 {
		return errors.New("--test-fsync-delay must not be negative")
	}
	if c.TokenRetention < 0 {
		return errors.New("--token-retention must not be negative (0 keeps revoked and expired tokens forever)")
	}
	if c.BootstrapExpect < 0 || (c.BootstrapExpect > 0 && len(c.Join) == 0) {
		return errors.New("--bootstrap-expect needs --join and must not be negative")
	}
	switch c.InitialClusterState {
	case "new", "existing":
	default:
		return fmt.Errorf("--initial-cluster-state %q: want new or existing", c.InitialClusterState)
	}
	switch c.ReadConsistency {
	case "bounded", "linearizable":
	default:
		return fmt.Errorf("--read-consistency %q: want bounded or linearizable", c.ReadConsistency)
	}
	if _, err := clock.ParseSource(c.TimeSource); err != nil {
		return fmt.Errorf("--time-source: %w", err)
	}
	if c.MaxClockCorrection <= 0 {
		return fmt.Errorf("--max-clock-correction %s: must be positive (to never correct, use --time-source local)", c.MaxClockCorrection)
	}
	if c.ClockOutlierThreshold < 0 {
		return fmt.Errorf("--clock-outlier-threshold %s: must not be negative", c.ClockOutlierThreshold)
	}
	if c.ShutdownDelay < 0 {
		return errors.New("--shutdown-delay must not be negative")
	}
	if c.MaxStaleness <= 0 || c.RequestTimeout <= 0 || c.TickInterval <= 0 || c.ElectionTicks < 2 {
		return errors.New("--max-staleness, --request-timeout and --tick-interval must be positive and --election-ticks at least 2")
	}
	if c.SnapshotCount == 0 {
		return errors.New("--snapshot-count must be positive")
	}
	if c.LastUsedInterval < 0 || c.LastUsedGranularity < 0 || c.LastUsedMaxPending <= 0 {
		return errors.New("--last-used-interval and --last-used-granularity must not be negative, --last-used-max-pending must be positive")
	}
	if c.GCHeapFloorMiB < 0 {
		return fmt.Errorf("--gc-heap-floor-mib %d: must be 0 (off) or positive", c.GCHeapFloorMiB)
	}
	if c.MaxInflight < 0 || c.OverloadRetryAfter <= 0 {
		return errors.New("--max-inflight must not be negative and --overload-retry-after must be positive")
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > oidc.MaxLeeway {
		return fmt.Errorf("--jwt-leeway %s: must be between 0 and %s", c.JWTLeeway, oidc.MaxLeeway)
	}
	if c.MaxRequestBytes < 4096 {
		return errors.New("--max-request-bytes must be at least 4096")
	}
	if _, err := c.Members(); err != nil {
		return err
	}
	return c.validateSecurity() // config_tls.go
}

// Members parses --initial-cluster into raft members with derived ids.
func (c *Config) Members() ([]*raftstorev1.Member, error) {
	spec := c.InitialCluster
	if spec == "" {
		spec = c.Name + "=" + c.AdvertisePeer
	}
	var out []*raftstorev1.Member
	seen := map[string]bool{}
	self := false
	for _, part := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("--initial-cluster: %q is not name=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--initial-cluster: member %s: %w", name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("--initial-cluster: member %s listed twice", name)
		}
		seen[name] = true
		if name == c.Name {
			self = true
		}
		out = append(out, &raftstorev1.Member{Name: name, Id: raftstore.MemberID(c.InitialClusterToken, name), PeerAddress: addr})
	}
	if !self {
		return nil, fmt.Errorf("--initial-cluster does not list this member (--name %s)", c.Name)
	}
	return out, nil
}

// DefaultConfig returns the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return c
}
