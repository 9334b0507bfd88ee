package ctl

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// Environment variables read when the matching flag is not given.
const (
	envEndpoints = "TOKENCTL_ENDPOINTS"
	envOutput    = "TOKENCTL_OUTPUT"
)

// defaultEndpoints are the client addresses "make run" starts.
const defaultEndpoints = "127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792"

// outputFormat selects how results are printed.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

// globalFlags are the raw values of the persistent flags, as cobra parsed
// them. They are checked and combined with the environment by resolve, so
// no command sees an unchecked value.
type globalFlags struct {
	endpoints   string
	output      string
	timeout     time.Duration
	dialTimeout time.Duration
	consistency string
	debug       bool
	creds       credentialFlags // credentials.go
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.endpoints, "endpoints", defaultEndpoints,
		"comma-separated client gRPC addresses (host:port), tried in order (env "+envEndpoints+")")
	fs.StringVarP(&g.output, "output", "o", string(outputTable),
		"output format: table or json (env "+envOutput+")")
	fs.DurationVar(&g.timeout, "timeout", 10*time.Second,
		"time limit for the whole command, connecting included")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 2*time.Second,
		"time limit for one endpoint's connection to become ready before the next is tried")
	fs.StringVar(&g.consistency, "consistency", "",
		"read consistency for get, list and verify: bounded or linearizable (default: the member's own default)")
	fs.BoolVar(&g.debug, "debug", false,
		"report skipped endpoints on stderr")
	g.creds.register(fs)
}

// options are the checked global settings of one command.
type options struct {
	endpoints   []string
	output      outputFormat
	timeout     time.Duration
	dialTimeout time.Duration
	consistency tokenstorev1.ReadConsistency
	debug       bool
	transport   credentials.TransportCredentials // TLS, or plain text with --insecure
	dialOptions []grpc.DialOption                // the caller's token
}

// resolve checks the global flags, filling in the environment for flags not
// given on the command line. Every problem is a usage error.
func (g *globalFlags) resolve(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (*options, error) {
	o := &options{
		timeout:     g.timeout,
		dialTimeout: g.dialTimeout,
		debug:       g.debug,
	}

	endpoints, from := g.endpoints, "--endpoints"
	if v, ok := lookupEnv(envEndpoints); ok && v != "" && !fs.Changed("endpoints") {
		endpoints, from = v, envEndpoints
	}
	eps, err := parseEndpoints(endpoints)
	if err != nil {
		return nil, usageErrorf("%s: %w", from, err)
	}
	o.endpoints = eps

	output, from := g.output, "--output"
	if v, ok := lookupEnv(envOutput); ok && v != "" && !fs.Changed("output") {
		output, from = v, envOutput
	}
	switch f := outputFormat(output); f {
	case outputTable, outputJSON:
		o.output = f
	default:
		return nil, usageErrorf("%s: unknown output format %q (want table or json)", from, output)
	}

	if g.timeout <= 0 {
		return nil, usageErrorf("--timeout: must be positive, got %s", g.timeout)
	}
	if g.dialTimeout <= 0 {
		return nil, usageErrorf("--dial-timeout: must be positive, got %s", g.dialTimeout)
	}

	switch g.consistency {
	case "":
		o.consistency = tokenstorev1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED
	case "bounded":
		o.consistency = tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED
	case "linearizable":
		o.consistency = tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	default:
		return nil, usageErrorf("--consistency: unknown value %q (want bounded or linearizable)", g.consistency)
	}
	if o.transport, o.dialOptions, err = g.creds.resolve(fs, lookupEnv); err != nil {
		return nil, err
	}
	return o, nil
}

// parseEndpoints splits a comma-separated list of host:port addresses.
// Schemes and paths are rejected here, where the mistake is a usage error,
// rather than surfacing later as an unreachable endpoint.
func parseEndpoints(s string) ([]string, error) {
	var eps []string
	for _, ep := range strings.Split(s, ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, fmt.Errorf("invalid endpoint %q (want host:port): %w", ep, err)
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("invalid endpoint %q (want host:port)", ep)
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("no endpoints given")
	}
	return eps, nil
}

// commandContext bounds one command by --timeout. The cause names the flag,
// so a timeout reads "timed out after 10s (--timeout)" rather than
// "context deadline exceeded".
func (o *options) commandContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(parent, o.timeout,
		fmt.Errorf("timed out after %s (--timeout)", o.timeout))
}

// connector returns the connector for the configured endpoints. debugOut
// receives skipped-endpoint lines only with --debug.
func (o *options) connector(debugOut io.Writer) *endpoints {
	e := &endpoints{
		addrs:       o.endpoints,
		dialTimeout: o.dialTimeout,
		userAgent:   "tokenctl/" + versionString(),
		transport:   o.transport,
		dialOptions: o.dialOptions,
	}
	if o.debug {
		e.debug = debugOut
	}
	return e
}
