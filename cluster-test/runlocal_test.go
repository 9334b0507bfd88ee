package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// runLocal is scripts/run-local.sh (what `make run` runs) started in its
// own process group, as a terminal runs it, so the test can press Ctrl-C.
type runLocal struct {
	cmd  *exec.Cmd
	data string
	env  []string // tokenctl's environment, from data/tokenctl.env
	out  *syncBuffer
	done chan error
}

// syncBuffer is the script's output, written by exec's copier while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeBasePort reserves BASE_PORT for the script: 30 consecutive ports
// that no cluster of this test process is given.
func freeBasePort(t *testing.T) int {
	t.Helper()
	base, err := harness.FreePortRange(30)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func startRunLocal(t *testing.T, base int) *runLocal {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := &runLocal{data: t.TempDir(), out: &syncBuffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command("bash", filepath.Join(root, "scripts", "run-local.sh"))
	r.cmd.Env = append(os.Environ(), "BIN="+bin, "DATA="+r.data, "BASE_PORT="+strconv.Itoa(base),
		"MIN_UPTIME=10", "RESTART_DELAY=1")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		// Whatever the test did, nothing of this run outlives it.
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		if t.Failed() {
			t.Logf("run-local.sh output:\n%s", r.out.String())
			for _, n := range []string{"n1", "n2", "n3"} {
				if b, err := os.ReadFile(filepath.Join(r.data, n+".log")); err == nil {
					t.Logf("%s.log:\n%s", n, b)
				}
			}
		}
	})
	return r
}

// waitEnv waits for data/tokenctl.env and reads tokenctl's environment
// from it: one line, "export K=V K=V ...".
func (r *runLocal) waitEnv(ctx context.Context, t *testing.T) {
	t.Helper()
	for {
		b, err := os.ReadFile(filepath.Join(r.data, "tokenctl.env"))
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(b)), "export "))
			r.env = append(os.Environ(), fields...)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s: %v", filepath.Join(r.data, "tokenctl.env"), ctx.Err())
		case err := <-r.done:
			r.done <- err
			t.Fatalf("run-local.sh exited before writing tokenctl.env: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ctl runs tokenctl with the environment the script wrote.
func (r *runLocal) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "tokenctl"), args...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// until calls ok every 100 ms until it returns nil or ctx ends.
func until(ctx context.Context, t *testing.T, what string, ok func() error) {
	t.Helper()
	for {
		err := ok()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRunLocalRestartsAKilledMemberAndStopsOnCtrlC runs what `make run`
// runs and the README's failover tour: the leader killed with SIGKILL, a
// token created at a survivor at once, the killed member started again by
// the script and caught up on that token; then Ctrl-C (SIGINT to the
// process group) stops every member.
func TestRunLocalRestartsAKilledMemberAndStopsOnCtrlC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := freeBasePort(t)
	r := startRunLocal(t, base)
	r.waitEnv(ctx, t)
	until(ctx, t, "a leader", func() error {
		out, err := r.ctl(ctx, "status", "-o", "json")
		if err != nil || !strings.Contains(out, `"leader": {`) {
			return fmt.Errorf("status: %v: %s", err, out)
		}
		return nil
	})

	// The leader is the member whose loss costs most: a write sent to a
	// survivor right after the kill was forwarded to it.
	out, err := r.ctl(ctx, "status", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v: %s", err, out)
	}
	var st struct{ Leader struct{ Name string } }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Leader.Name == "" {
		t.Fatalf("status answer %q: %v", out, err)
	}
	victim := st.Leader.Name
	i := int(victim[1] - '0') // n1..n3
	survivor := 1 + i%3       // another member's number
	victimAddr := "127.0.0.1:" + strconv.Itoa(base+i-1)
	survivorAddr := "127.0.0.1:" + strconv.Itoa(base+survivor-1)
	victimDir := filepath.Join(r.data, victim)
	old, err := lg.FindMemberPID(victimDir)
	if err != nil {
		t.Fatal(err)
	}
	// Killed at once: a member killed by a signal is started again however
	// short its life (only one failing on its own at start is left down).
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A write at a survivor while the leader is down: two of three members
	// are a quorum, and the write must not be lost with the dead leader.
	out, err = r.ctl(ctx, "--endpoints", survivorAddr, "token", "create", "--user", "written-while-the-leader-was-down", "-o", "json")
	if err != nil {
		t.Fatalf("create at n%d with the leader %s killed: %v: %s", survivor, victim, err, out)
	}
	var created struct{ Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
		t.Fatalf("create answer %q: %v", out, err)
	}
	until(ctx, t, victim+" started again and caught up", func() error {
		pid, err := lg.FindMemberPID(victimDir)
		if err != nil {
			return err
		}
		if pid == old {
			return errors.New("still the killed process")
		}
		out, err := r.ctl(ctx, "--endpoints", victimAddr, "token", "verify", created.Token, "-o", "json")
		if err != nil || !strings.Contains(out, `"authenticated": true`) || !strings.Contains(out, `"member": "`+victim+`"`) {
			return fmt.Errorf("verify at %s: %v: %s", victim, err, out)
		}
		return nil
	})
	if !strings.Contains(r.out.String(), victim+" exited with status 137; starting it again") {
		t.Errorf("the script did not say it restarted %s:\n%s", victim, r.out.String())
	}

	var pids []int
	for _, n := range []string{"n1", "n2", "n3"} {
		pid, err := lg.FindMemberPID(filepath.Join(r.data, n))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		r.done <- nil // for the cleanup
	case <-ctx.Done():
		t.Fatal("run-local.sh still running after Ctrl-C")
	}
	for i, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			st, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
			t.Errorf("n%d (pid %d) still exists after Ctrl-C (kill 0: %v):\n%s", i+1, pid, err, st)
		}
	}
	if !strings.Contains(r.out.String(), "stopped; data kept in "+r.data) {
		t.Errorf("no stop message:\n%s", r.out.String())
	}
	if n := strings.Count(r.out.String(), "starting it again"); n != 1 {
		t.Errorf("%d restart messages, want 1 (the kill's; none on Ctrl-C):\n%s", n, r.out.String())
	}
}

// TestRunLocalEndsWhenAMemberCannotStart: a member that dies right after
// starting (here its peer port is taken) is not restarted in a loop; the
// run ends with an error and stops the other members.
func TestRunLocalEndsWhenAMemberCannotStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := freeBasePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+10)) // n1's peer port
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := startRunLocal(t, base)
	var runErr error
	select {
	case runErr = <-r.done:
		r.done <- runErr // for the cleanup
	case <-ctx.Done():
		t.Fatal("run-local.sh still running with n1 unable to start")
	}
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("run-local.sh ended with %v, want a non-zero exit", runErr)
	}
	out := r.out.String()
	if !strings.Contains(out, "address already in use") && !strings.Contains(out, "left down") {
		t.Errorf("the output does not say why:\n%s", out)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if pid, err := lg.FindMemberPID(filepath.Join(r.data, n)); err == nil {
			t.Errorf("%s (pid %d) still running after the run ended", n, pid)
		}
	}
}
