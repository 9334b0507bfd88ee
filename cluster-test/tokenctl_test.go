package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tokenctl runs the real binary with the credentials of the test's cluster
// (ctlCluster) and returns stdout, stderr and exit code.
func tokenctl(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "tokenctl"), args...)
	cmd.Env = ctlCluster(t).CtlEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestTokenctlAgainstRealCluster walks the README tour with the real
// binaries: create at one member, verify at another, update, revoke, and
// the errors a user meets (unknown id, bad flag, no endpoint), with the
// first endpoint down to exercise failover.
func TestTokenctlAgainstRealCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first endpoint is a follower that will be killed: failover, not
	// leader election, is what this test is about.
	order := append(c.Followers(leader), leader)
	down := order[0]
	all := order[0].ClientAddr + "," + order[1].ClientAddr + "," + order[2].ClientAddr

	out, errOut, code := tokenctl(ctx, t, "--endpoints", all, "token", "create", "--user", "alice", "--group", "dev", "--group", "ops", "--ttl", "24h", "-o", "json")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	var created struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" || !strings.HasPrefix(created.Token, created.ID+":") {
		t.Fatalf("create output %q: %v", out, err)
	}

	verifyAt := func(endpoints string) map[string]any {
		t.Helper()
		out, errOut, code := tokenctl(ctx, t, "--endpoints", endpoints, "token", "verify", created.Token, "--consistency", "linearizable", "-o", "json")
		if code != 0 {
			t.Fatalf("verify: exit %d: %s", code, errOut)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := verifyAt(order[2].ClientAddr)
	if v["authenticated"] != true || v["member"] != order[2].Name || v["revision"].(float64) == 0 {
		t.Fatalf("verify at %s: %v", order[2].Name, v)
	}
	if u := v["user"].(map[string]any); u["username"] != "alice" || len(u["groups"].([]any)) != 2 {
		t.Fatalf("verify user: %v", u)
	}

	// The first endpoint is down: tokenctl moves on.
	c.Kill(down)
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", all, "token", "update", created.ID, "--disable"); code != 0 {
		t.Fatalf("update with first endpoint down: exit %d: %s", code, errOut)
	}
	if v := verifyAt(all); v["authenticated"] != false || v["reason"] != "disabled" {
		t.Fatalf("after disable: %v", v)
	}
	out, _, code = tokenctl(ctx, t, "--endpoints", all, "token", "list")
	if code != 0 || !strings.Contains(out, created.ID) || !strings.Contains(out, "disabled") {
		t.Fatalf("list table (exit %d):\n%s", code, out)
	}
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", all, "token", "revoke", created.ID); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errOut)
	}
	if v := verifyAt(all); v["reason"] != "revoked" {
		t.Fatalf("after revoke: %v", v)
	}
	if strings.Contains(out, created.Token) {
		t.Fatal("the bearer token appears in list output")
	}

	// Errors a user meets.
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", all, "token", "get", "token-doesnotexist"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("unknown id: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", all, "token", "create", "--user", "x", "--ttl", "soon"); code != 2 || !strings.HasPrefix(errOut, "error: ") {
		t.Fatalf("bad flag: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := tokenctl(ctx, t, "--endpoints", down.ClientAddr, "status"); code != 3 || !strings.Contains(errOut, "no endpoint reachable") {
		t.Fatalf("dead endpoint: exit %d, stderr %q", code, errOut)
	}
}
