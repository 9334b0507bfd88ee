// Package harness starts real tokenstore processes on loopback for tests and
// benchmarks: build the binaries once, start a cluster, SIGKILL, SIGSTOP and
// restart members, and talk to them over real gRPC. With Options.Proxies
// every peer link runs through a TCP proxy the test controls (Network:
// delay, one-way cut, black hole, refuse). It never targets anything but
// 127.0.0.1.
//
// A Cluster is changed (Start, Kill, Pause, AddMember ...) from one
// goroutine at a time; its gRPC clients, Network and the read-only
// accessors (Running, Paused, Pid) are safe for concurrent use.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// Build compiles tokenstore and tokenctl from the module at root into dir
// and returns the directory.
func Build(root, dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/tokenstore", "./cmd/tokenctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %v\n%s", err, out)
	}
	return nil
}

// BuildRelease compiles tokenstore and tokenctl as they were at commit of
// the git repository at root into dir: the tree is exported with git
// archive into a directory of its own, so the work tree is not touched.
func BuildRelease(root, commit, dir string) error {
	src, err := os.MkdirTemp("", "tokenstore-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", commit)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	extract.Stdin = pipe
	var archiveErr strings.Builder
	archive.Stderr = &archiveErr
	if err := extract.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		return fmt.Errorf("git archive %s: %v: %s", commit, err, archiveErr.String())
	}
	if err := extract.Wait(); err != nil {
		return fmt.Errorf("extract %s: %w", commit, err)
	}
	return Build(src, dir)
}

// ModuleRoot finds the directory holding go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Member is one tokenstore process.
type Member struct {
	Name       string
	DataDir    string
	ClientAddr string
	// PeerAddr is the address the member listens on for peers.
	PeerAddr string
	// AdvertisePeer is the address other members dial: PeerAddr, or the
	// member's proxy in a cluster with proxies.
	AdvertisePeer string
	HTTPAddr      string
	LogPath       string
	// Flags are extra flags for this member only (after Cluster.Extra).
	Flags []string
	// Bin, when set, is the directory of this member's tokenstore binary
	// instead of Cluster.Bin (a member of another release).
	Bin    string
	cmd    *exec.Cmd
	exited chan struct{}
	pid    atomic.Int64
	paused atomic.Bool
	// expectExit is set while the harness itself stops the process.
	expectExit atomic.Bool
	exitsMu    sync.Mutex
	crashes    []string
	conn       *grpc.ClientConn
	tls        *clusterTLS
	Auth       tokenstorev1.AuthServiceClient
	Tokens     tokenstorev1.TokenServiceClient
	Cluster    tokenstorev1.ClusterServiceClient
}

// Cluster is a set of members started with one --initial-cluster.
type Cluster struct {
	Bin     string
	Dir     string
	Members []*Member
	Extra   []string // extra flags for every member
	// Net carries every peer link when the cluster was made with
	// Options.Proxies; nil otherwise.
	Net *Network

	mu   sync.Mutex
	pids map[int]string // running process id -> member name
	tls  *clusterTLS    // tls.go
}

// Options configure a cluster.
type Options struct {
	Size  int
	Extra []string
	// Proxies puts a proxy in front of every member's peer listener and
	// makes it the address in --initial-cluster, so all peer traffic goes
	// through Cluster.Net.
	Proxies bool
}

// freePorts reserves n distinct loopback ports. They are released before
// the processes bind them; a collision surfaces as a clear listen error.
// Ports come from below the kernel's ephemeral range when it can be read,
// so that no outgoing connection takes a member's port while the member is
// down between a kill and its restart.
func freePorts(n int) ([]string, error) {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[string]bool{}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	low := ephemeralLow()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0"
		if low > 12000 && tries < 100*n {
			addr = fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue
			}
			return nil, err
		}
		ls = append(ls, l)
		if handedOut.ports[l.Addr().String()] {
			continue // free now, but another member of this process has it
		}
		handedOut.ports[l.Addr().String()] = true
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// FreePortRange reserves n consecutive loopback ports, for a program that
// takes a base port (scripts/run-local.sh), and returns the first. Like
// freePorts it draws below the kernel's ephemeral range and records the
// ports as handed out, so no cluster of this process is given one; it
// avoids the range `make run` uses by default (23790 to 23822), so a
// developer's local cluster does not collide with a test.
func FreePortRange(n int) (int, error) {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[string]bool{}
	}
	low := ephemeralLow()
	if low < 10000+2*n {
		low = 32768
	}
next:
	for tries := 0; tries < 200; tries++ {
		base := 10000 + rand.IntN(low-10000-n)
		if base <= 23822 && base+n > 23790 {
			continue
		}
		var ls []net.Listener
		closeAll := func() {
			for _, l := range ls {
				l.Close()
			}
		}
		for p := base; p < base+n; p++ {
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			if handedOut.ports[addr] {
				closeAll()
				continue next
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll()
				continue next
			}
			ls = append(ls, l)
		}
		closeAll()
		for p := base; p < base+n; p++ {
			handedOut.ports[fmt.Sprintf("127.0.0.1:%d", p)] = true
		}
		return base, nil
	}
	return 0, fmt.Errorf("no %d consecutive free loopback ports below %d", n, low)
}

// handedOut is every port freePorts returned in this process. A port is
// released before its process binds it, so without this record two
// members (of one cluster or of clusters a test runs one after another)
// could be given the same port and one would fail to listen.
var handedOut struct {
	mu    sync.Mutex
	ports map[string]bool
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// New prepares (but does not start) a cluster of opts.Size members whose
// data lives under dir.
func New(bin, dir string, opts Options) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Bin: bin, Dir: dir, Extra: opts.Extra, pids: map[int]string{}}
	var err error
	if c.tls, err = newClusterTLS(dir); err != nil {
		return nil, err
	}
	if opts.Proxies {
		c.Net = newNetwork(c.connOwner)
	}
	var initial []string
	for i := 0; i < opts.Size; i++ {
		m, err := c.NewMember(fmt.Sprintf("n%d", i+1))
		if err != nil {
			c.Stop()
			return nil, err
		}
		initial = append(initial, m.Name+"="+m.AdvertisePeer)
	}
	c.Extra = append(c.Extra, "--initial-cluster", strings.Join(initial, ","))
	return c, nil
}

// NewMember adds a member named name to c.Members with fresh ports (and a
// proxy) without starting it. New calls it for the initial members; a test
// that adds a member to a running cluster sets its Flags (for example
// --initial-cluster-state existing) before Start.
func (c *Cluster) NewMember(name string) (*Member, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	m := &Member{
		Name: name, DataDir: filepath.Join(c.Dir, name), LogPath: filepath.Join(c.Dir, name+".log"),
		ClientAddr: ports[0], PeerAddr: ports[1], HTTPAddr: ports[2], AdvertisePeer: ports[1],
		tls: c.tls,
	}
	if c.Net != nil {
		if err := c.Net.listen(name, ports[3], m.PeerAddr); err != nil {
			return nil, err
		}
		m.AdvertisePeer = ports[3]
	}
	c.mu.Lock()
	c.Members = append(c.Members, m)
	c.mu.Unlock()
	return m, nil
}

// connOwner names the member whose process opened c (a connection
// accepted by a proxy), or "" with closed set when its opener has closed
// it already (socketOwner).
func (c *Cluster) connOwner(conn net.Conn) (name string, closed bool) {
	c.mu.Lock()
	pids := make([]int, 0, len(c.pids))
	for pid := range c.pids {
		pids = append(pids, pid)
	}
	c.mu.Unlock()
	pid, closed := socketOwner(conn, pids)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pids[pid], closed
}

// StartAll starts every member.
func (c *Cluster) StartAll() error {
	for _, m := range c.Members {
		if err := c.Start(m); err != nil {
			return err
		}
	}
	return nil
}

// Start starts m's process (again) with its data directory.
func (c *Cluster) Start(m *Member) error {
	args := []string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client", m.ClientAddr, "--listen-peer", m.PeerAddr, "--listen-http", m.HTTPAddr,
	}
	if m.AdvertisePeer != "" && m.AdvertisePeer != m.PeerAddr {
		args = append(args, "--advertise-peer", m.AdvertisePeer)
	}
	tlsFlags, err := c.tls.memberFlags(m, append(append([]string(nil), c.Extra...), m.Flags...))
	if err != nil {
		return err
	}
	args = append(append(append(args, tlsFlags...), c.Extra...), m.Flags...)
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	bin := c.Bin
	if m.Bin != "" {
		bin = m.Bin
	}
	cmd := exec.Command(filepath.Join(bin, "tokenstore"), args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	m.paused.Store(false)
	m.expectExit.Store(false)
	pid := cmd.Process.Pid
	m.pid.Store(int64(pid))
	c.mu.Lock()
	c.pids[pid] = m.Name
	c.mu.Unlock()
	exited := m.exited
	go func() {
		err := cmd.Wait()
		if !m.expectExit.Load() {
			m.exitsMu.Lock()
			m.crashes = append(m.crashes, fmt.Sprintf("%s exited on its own at %s: %v", m.Name, time.Now().Format(time.RFC3339Nano), err))
			m.exitsMu.Unlock()
		}
		logf.Close()
		c.mu.Lock()
		delete(c.pids, pid)
		c.mu.Unlock()
		m.pid.CompareAndSwap(int64(pid), 0)
		close(exited)
	}()
	if m.conn == nil {
		conn, err := m.Dial()
		if err != nil {
			return err
		}
		m.conn = conn
		m.Auth = tokenstorev1.NewAuthServiceClient(conn)
		m.Tokens = tokenstorev1.NewTokenServiceClient(conn)
		m.Cluster = tokenstorev1.NewClusterServiceClient(conn)
	}
	return nil
}

// Kill sends SIGKILL to m and waits for it to exit.
func (c *Cluster) Kill(m *Member) {
	if m.cmd == nil {
		return
	}
	m.expectExit.Store(true)
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
	m.paused.Store(false)
}

// Terminate sends SIGTERM to m and waits for a graceful exit (a paused
// member is continued first, or it could not act on the signal).
func (c *Cluster) Terminate(m *Member) {
	if m.cmd == nil {
		return
	}
	m.expectExit.Store(true)
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	if m.paused.Load() {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
	}
	<-m.exited
	m.cmd = nil
	m.paused.Store(false)
}

// Pause stops m with SIGSTOP: the process keeps its sockets and state but
// does nothing, as a member stalled by the kernel, a VM pause or a long GC.
func (c *Cluster) Pause(m *Member) error {
	if !m.Running() {
		return fmt.Errorf("pause %s: not running", m.Name)
	}
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s: %w", m.Name, err)
	}
	m.paused.Store(true)
	return nil
}

// Resume continues a paused member with SIGCONT.
func (c *Cluster) Resume(m *Member) error {
	if !m.paused.Load() {
		return nil
	}
	m.paused.Store(false)
	if !m.Running() {
		return nil
	}
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", m.Name, err)
	}
	return nil
}

// ExpectExit tells the harness whether m may stop on its own now (for
// example once removed from the cluster): such an exit is not a crash.
// Start resets it to false.
func (m *Member) ExpectExit(expected bool) { m.expectExit.Store(expected) }

// Crashes lists the exits of m that the harness did not cause (Kill,
// Terminate, Stop): a member that stopped on its own.
func (m *Member) Crashes() []string {
	m.exitsMu.Lock()
	defer m.exitsMu.Unlock()
	return append([]string(nil), m.crashes...)
}

// Paused reports whether m is stopped by Pause.
func (m *Member) Paused() bool { return m.paused.Load() }

// Pid is the process id of m while it runs, else 0.
func (m *Member) Pid() int { return int(m.pid.Load()) }

// Running reports whether m's process is up.
func (m *Member) Running() bool {
	return m.pid.Load() != 0
}

// Stop kills every member, closes the clients and the network.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		c.Kill(m)
		if m.conn != nil {
			m.conn.Close()
			m.conn = nil
		}
	}
	if c.Net != nil {
		c.Net.Close()
	}
}

// HasFlag reports whether the binary accepts --flag, hidden test-only
// flags included (they are left out of --help's text, so the help is not
// searched): the flag parser rejects an unknown flag before printing help.
func (c *Cluster) HasFlag(flag string) bool {
	out, err := exec.Command(filepath.Join(c.Bin, "tokenstore"), "--help", "--"+flag+"=0").CombinedOutput()
	return err == nil && !strings.Contains(string(out), "unknown flag") && !strings.Contains(string(out), "unknown shorthand")
}

// Ready reports whether m answers /readyz with 200.
func (m *Member) Ready(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.HTTPURL("/readyz"), nil)
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz of every running member until all are ready; it
// fails when no member is running (a member that exited is not ready).
// Polling is the only signal a separate process offers.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		all, running := true, 0
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			running++
			if !m.Ready(ctx) {
				all = false
			}
		}
		if running == 0 {
			// Nothing to wait for: every member exited (a member that
			// failed to start is not "ready").
			return fmt.Errorf("no member is running\n%s", c.LogTails(20))
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("members not ready: %w\n%s", ctx.Err(), c.LogTails(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Leader asks the running members for the leader until one is reported by
// a member that is itself running, and returns it.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	for {
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := m.Cluster.Status(qctx, &tokenstorev1.StatusRequest{})
			cancel()
			if err != nil || st.GetLeaderName() == "" {
				continue
			}
			for _, l := range c.Members {
				if l.Name == st.GetLeaderName() && l.Running() {
					return l, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w\n%s", ctx.Err(), c.LogTails(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Followers returns the running members other than leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m != leader && m.Running() {
			out = append(out, m)
		}
	}
	return out
}

// LogTails returns the last n lines of every member's log, for failures.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, m := range c.Members {
		f, err := os.Open(m.LogPath)
		if err != nil {
			continue
		}
		var lines []string
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			lines = append(lines, s.Text())
			if len(lines) > n {
				lines = lines[1:]
			}
		}
		f.Close()
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", m.Name, m.LogPath, strings.Join(lines, "\n"))
	}
	return b.String()
}
