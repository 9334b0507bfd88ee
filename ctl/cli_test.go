package ctl

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is the clock every in-process run sees, so table output that
// depends on "now" (expired, --ttl from now) is deterministic.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// cliResult is what one in-process run of tokenctl produced.
type cliResult struct {
	code   int
	stdout string
	stderr string
}

// cliRun describes one in-process run. env replaces the process
// environment entirely, so tests can run in parallel and never pick up a
// developer's TOKENCTL_* settings.
type cliRun struct {
	ctx   context.Context
	env   map[string]string
	stdin string
	args  []string
}

func (r cliRun) exec(t *testing.T) cliResult {
	t.Helper()
	ctx := r.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	var stdout, stderr bytes.Buffer
	a := &app{
		stdin:  strings.NewReader(r.stdin),
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := r.env[k]
			if !ok && k == envInsecure {
				// The in-process member doubles serve plain text.
				return "true", true
			}
			return v, ok
		},
		now: func() time.Time { return testNow },
	}
	code := a.run(ctx, r.args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// runCLI runs tokenctl in-process against endpoints (given through the
// environment, as a user's shell would) with args.
func runCLI(t *testing.T, endpoints string, args ...string) cliResult {
	t.Helper()
	return cliRun{env: map[string]string{envEndpoints: endpoints}, args: args}.exec(t)
}

// closedAddr returns a loopback address nothing listens on: a port the
// kernel just handed out and that was closed again at once.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

// silentAddr returns a loopback address that accepts TCP connections and
// never speaks: a gRPC connection to it stays CONNECTING, like one to a
// hung process, so only --dial-timeout gets tokenctl past it.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
