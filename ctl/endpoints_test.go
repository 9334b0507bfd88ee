package ctl

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNoEndpointReachable checks exit code 3 and the exact error line when
// nothing listens, for a read and for a write.
func TestNoEndpointReachable(t *testing.T) {
	t.Parallel()
	a, b := closedAddr(t), closedAddr(t)
	for _, args := range [][]string{
		{"status"},
		{"token", "get", "tok-1"},
		{"token", "create", "--user", "alice"},
		{"token", "revoke", "tok-1"},
	} {
		res := runCLI(t, a+","+b, args...)
		if res.code != ExitUnreachable {
			t.Errorf("tokenctl %v: exit code %d, want %d (stderr %q)", args, res.code, ExitUnreachable, res.stderr)
			continue
		}
		prefix := "error: no endpoint reachable (tried " + a + ", " + b + "): "
		if !strings.HasPrefix(res.stderr, prefix) || !strings.Contains(res.stderr, b) || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("tokenctl %v: stderr = %q, want one line starting %q naming the last error", args, res.stderr, prefix)
		}
		if res.stdout != "" {
			t.Errorf("tokenctl %v: stdout = %q, want nothing", args, res.stdout)
		}
	}
}

// TestDebugReportsSkippedEndpoints checks that skipped endpoints are
// reported with --debug and only then.
func TestDebugReportsSkippedEndpoints(t *testing.T) {
	t.Parallel()
	closed := closedAddr(t)
	d := &memberDouble{name: "m2"}
	live := d.start(t)

	quiet := runCLI(t, closed+","+live, "status")
	if quiet.code != ExitOK || quiet.stderr != "" {
		t.Errorf("without --debug: code %d, stderr %q; want 0 and nothing", quiet.code, quiet.stderr)
	}
	loud := runCLI(t, closed+","+live, "status", "--debug")
	if loud.code != ExitOK || !strings.Contains(loud.stderr, "skipping endpoint "+closed) {
		t.Errorf("with --debug: code %d, stderr %q; want 0 and a line about %s", loud.code, loud.stderr, closed)
	}
}

// TestFailoverPastUnreadyEndpoints checks that endpoints that refuse or
// never become READY are skipped, for reads and for writes alike: a write
// that never left the client cannot have been applied.
func TestFailoverPastUnreadyEndpoints(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m3"}
	live := d.start(t)
	endpoints := closedAddr(t) + "," + silentAddr(t) + "," + live

	for _, args := range [][]string{
		{"status", "-o", "json"},
		{"token", "create", "--user", "alice", "-o", "json"},
	} {
		start := time.Now()
		res := runCLI(t, endpoints, append(args, "--dial-timeout", "300ms")...)
		if res.code != ExitOK {
			t.Fatalf("tokenctl %v: exit code %d (stderr %q)", args, res.code, res.stderr)
		}
		if m := decodeObject(t, res.stdout); m["member"] != "m3" {
			t.Errorf("tokenctl %v answered by %v, want m3", args, m["member"])
		}
		// The silent endpoint costs one dial timeout, not the command timeout.
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("tokenctl %v took %s; the silent endpoint was not skipped after --dial-timeout", args, elapsed)
		}
	}
	if got := d.called(); !slices.Equal(got, []string{"Status", "CreateToken"}) {
		t.Errorf("live member got %v, want [Status CreateToken]", got)
	}
}

// TestReadFailsOverOnUnavailable checks that a read moves on when a member
// answers UNAVAILABLE (it cannot confirm it is caught up).
func TestReadFailsOverOnUnavailable(t *testing.T) {
	t.Parallel()
	stale := &memberDouble{name: "m1", fail: status.Error(codes.Unavailable, "not caught up with the leader")}
	good := &memberDouble{name: "m2"}
	endpoints := stale.start(t) + "," + good.start(t)

	for _, args := range [][]string{
		{"token", "get", "tok-1"},
		{"token", "list"},
		{"token", "verify", "tok-1:wrong"},
		{"status"},
	} {
		res := runCLI(t, endpoints, append(args, "-o", "json")...)
		if res.code != ExitOK {
			t.Errorf("tokenctl %v: exit code %d (stderr %q)", args, res.code, res.stderr)
			continue
		}
		if m := decodeObject(t, res.stdout); m["member"] != "m2" {
			t.Errorf("tokenctl %v answered by %v, want m2", args, m["member"])
		}
	}
	if got, want := len(stale.called()), 4; got != want {
		t.Errorf("unavailable member got %d calls, want %d", got, want)
	}
}

// TestWriteDoesNotFailOverOnceSent checks that a write that reached a
// member is never sent to a second one, even when the first answered
// UNAVAILABLE: it may have been applied.
func TestWriteDoesNotFailOverOnceSent(t *testing.T) {
	t.Parallel()
	first := &memberDouble{name: "m1", fail: status.Error(codes.Unavailable, "leader lost")}
	second := &memberDouble{name: "m2"}
	endpoints := first.start(t) + "," + second.start(t)

	for _, tc := range []struct {
		args []string
		what string
	}{
		{[]string{"token", "create", "--user", "alice"}, "create token for user alice"},
		{[]string{"token", "update", "tok-1", "--disable"}, "update token tok-1"},
		{[]string{"token", "revoke", "tok-1"}, "revoke token tok-1"},
	} {
		res := runCLI(t, endpoints, tc.args...)
		if res.code != ExitFailed {
			t.Errorf("tokenctl %v: exit code %d, want %d (stderr %q)", tc.args, res.code, ExitFailed, res.stderr)
		}
		want := "error: " + tc.what + ": leader lost (the change may or may not have been applied; check before retrying)\n"
		if res.stderr != want {
			t.Errorf("tokenctl %v: stderr = %q, want %q", tc.args, res.stderr, want)
		}
	}
	if got := second.called(); len(got) != 0 {
		t.Errorf("second member got %v; a write was sent twice", got)
	}
}

// TestUnavailableEverywhere checks that a read every member refused with
// UNAVAILABLE is a failed operation (1), not an unreachable cluster (3).
func TestUnavailableEverywhere(t *testing.T) {
	t.Parallel()
	a := &memberDouble{name: "m1", fail: status.Error(codes.Unavailable, "no quorum")}
	b := &memberDouble{name: "m2", fail: status.Error(codes.Unavailable, "no quorum here either")}
	addrA, addrB := a.start(t), b.start(t)
	res := runCLI(t, addrA+","+addrB, "token", "get", "tok-1")
	want := "error: get token tok-1: unavailable on every endpoint (tried " + addrA + ", " + addrB + "): no quorum here either\n"
	if res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}
}

// TestServerRefusal checks that other statuses end the command at once,
// with the member's message and the operation named.
func TestServerRefusal(t *testing.T) {
	t.Parallel()
	notFound := &memberDouble{name: "m1", fail: status.Error(codes.NotFound, "token tok-x not found")}
	other := &memberDouble{name: "m2"}
	res := runCLI(t, notFound.start(t)+","+other.start(t), "token", "get", "tok-x")
	if want := "error: get token tok-x: token tok-x not found\n"; res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}
	if got := other.called(); len(got) != 0 {
		t.Errorf("NotFound must not fail over; second member got %v", got)
	}

	// A member message that already names the operation is not doubled.
	wrapped := &memberDouble{name: "m4", fail: status.Error(codes.FailedPrecondition, `update token tok-x: token "tok-x": token is revoked`)}
	res = runCLI(t, wrapped.start(t), "token", "update", "tok-x", "--enable")
	if want := "error: update token tok-x: token \"tok-x\": token is revoked\n"; res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}

	// A status without a message still says what happened.
	bare := &memberDouble{name: "m3", fail: status.Error(codes.FailedPrecondition, "")}
	res = runCLI(t, bare.start(t), "token", "revoke", "tok-x")
	if want := "error: revoke token tok-x: failed precondition\n"; res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}
}

// TestTimeout checks that --timeout bounds a command against a member that
// accepted the request and hangs.
func TestTimeout(t *testing.T) {
	t.Parallel()
	hung := &memberDouble{name: "m1", block: true}
	res := runCLI(t, hung.start(t), "status", "--timeout", "300ms")
	if want := "error: get cluster status: timed out after 300ms (--timeout)\n"; res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}

	// Running out of time while still connecting means nothing was sent:
	// that is an unreachable cluster (3), and the message names --timeout.
	silent := silentAddr(t)
	res = runCLI(t, silent, "token", "create", "--user", "alice", "--timeout", "300ms", "--dial-timeout", "5s")
	if want := "error: no endpoint reachable (tried " + silent + "): " + silent + ": timed out after 300ms (--timeout)\n"; res.code != ExitUnreachable || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitUnreachable, want)
	}

	// A write that timed out may still be applied; the message says so.
	res = runCLI(t, hung.start(t), "token", "create", "--user", "alice", "--timeout", "300ms")
	want := "error: create token for user alice: timed out after 300ms (--timeout) (the change may or may not have been applied; check before retrying)\n"
	if res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}
}

// TestInterrupted checks that a cancelled context (SIGINT in main) ends the
// command with exit 1 and says so.
func TestInterrupted(t *testing.T) {
	t.Parallel()
	hung := &memberDouble{name: "m1", block: true}
	addr := hung.start(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the request is in flight.
		for len(hung.called()) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	res := cliRun{ctx: ctx, env: map[string]string{envEndpoints: addr}, args: []string{"status"}}.exec(t)
	if want := "error: get cluster status: interrupted\n"; res.code != ExitFailed || res.stderr != want {
		t.Errorf("code %d, stderr %q; want %d, %q", res.code, res.stderr, ExitFailed, want)
	}
}

// TestEndpointsFromEnvironment checks TOKENCTL_ENDPOINTS and that the flag
// wins over it.
func TestEndpointsFromEnvironment(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	live := d.start(t)
	closed := closedAddr(t)

	if res := runCLI(t, live, "status"); res.code != ExitOK {
		t.Errorf("endpoint from %s: code %d, stderr %q", envEndpoints, res.code, res.stderr)
	}
	if res := runCLI(t, live, "status", "--endpoints", closed); res.code != ExitUnreachable {
		t.Errorf("--endpoints over %s: code %d, want %d", envEndpoints, res.code, ExitUnreachable)
	}
}
