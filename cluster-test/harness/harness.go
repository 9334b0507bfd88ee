// Package harness starts real tokenstore processes on loopback for tests and
// benchmarks: build the binaries once, start a cluster, SIGKILL and restart
// members, and talk to them over real gRPC. It never targets anything but
// 127.0.0.1.
//
// A Cluster is used from one goroutine (the test's); its gRPC clients are
// safe for concurrent use.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
	PeerAddr   string
	HTTPAddr   string
	LogPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
	conn       *grpc.ClientConn
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
}

// Options configure a cluster.
type Options struct {
	Size  int
	Extra []string
}

// freePorts reserves n distinct loopback ports. They are released before
// the processes bind them; a collision surfaces as a clear listen error.
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// New prepares (but does not start) a cluster of opts.Size members whose
// data lives under dir.
func New(bin, dir string, opts Options) (*Cluster, error) {
	ports, err := freePorts(3 * opts.Size)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Bin: bin, Dir: dir, Extra: opts.Extra}
	var initial []string
	for i := 0; i < opts.Size; i++ {
		name := fmt.Sprintf("n%d", i+1)
		m := &Member{
			Name: name, DataDir: filepath.Join(dir, name), LogPath: filepath.Join(dir, name+".log"),
			ClientAddr: ports[3*i], PeerAddr: ports[3*i+1], HTTPAddr: ports[3*i+2],
		}
		c.Members = append(c.Members, m)
		initial = append(initial, name+"="+m.PeerAddr)
	}
	c.Extra = append(c.Extra, "--initial-cluster", strings.Join(initial, ","))
	return c, nil
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
	args := append([]string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client", m.ClientAddr, "--listen-peer", m.PeerAddr, "--listen-http", m.HTTPAddr,
	}, c.Extra...)
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.Bin, "tokenstore"), args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(m.exited) }()
	if m.conn == nil {
		conn, err := grpc.NewClient(m.ClientAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
}

// Terminate sends SIGTERM to m and waits for a graceful exit.
func (c *Cluster) Terminate(m *Member) {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	<-m.exited
	m.cmd = nil
}

// Running reports whether m's process is up.
func (m *Member) Running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Stop kills every member and closes the clients.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		c.Kill(m)
		if m.conn != nil {
			m.conn.Close()
			m.conn = nil
		}
	}
}

// Ready reports whether m answers /readyz with 200.
func (m *Member) Ready(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz of every running member until all are ready.
// Polling is the only signal a separate process offers.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		all := true
		for _, m := range c.Members {
			if m.Running() && !m.Ready(ctx) {
				all = false
			}
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
