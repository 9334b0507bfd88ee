package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdMember is one etcdmember process.
type etcdMember struct {
	Name, DataDir, ClientAddr, PeerAddr, LogPath string
	// HTTPAddr serves etcd's HTTP services, so ClientAddr is gRPC only
	// (etcdmember --listen-client-http says why).
	HTTPAddr string
	// flags are extra flags for this member (scale settings, joining).
	flags []string
	cmd   *exec.Cmd
	ready chan struct{}
	done  chan struct{}
	// cli talks to this member only (one endpoint), so a read at a
	// follower is served by that follower.
	cli *clientv3.Client
}

// etcdCluster is three (or four) etcdmember processes on 127.0.0.1. It is
// changed from one goroutine; its clients are safe for concurrent use.
type etcdCluster struct {
	bin, dir string
	initial  string
	extra    []string
	Members  []*etcdMember
	tls      *etcdTLS // etcdtls.go
}

// loopbackPorts reserves n free ports on 127.0.0.1 (released before use;
// a collision shows as a clear listen error in the member's log).
func loopbackPorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
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

// buildEtcdMember compiles bench/cmd/etcdmember into dir.
func buildEtcdMember(benchRoot, dir string) (string, error) {
	out := filepath.Join(dir, "etcdmember")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/etcdmember")
	cmd.Dir = benchRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build etcdmember: %v\n%s", err, b)
	}
	return out, nil
}

func newEtcdCluster(bin, dir string, size int, extra ...string) (*etcdCluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	t, err := newEtcdTLS(dir)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{bin: bin, dir: dir, extra: extra, tls: t}
	var initial []string
	for i := 0; i < size; i++ {
		m, err := c.newMember(fmt.Sprintf("e%d", i+1))
		if err != nil {
			return nil, err
		}
		initial = append(initial, m.Name+"="+peerURL(m.PeerAddr))
	}
	c.initial = strings.Join(initial, ",")
	return c, nil
}

func (c *etcdCluster) newMember(name string) (*etcdMember, error) {
	ports, err := loopbackPorts(3)
	if err != nil {
		return nil, err
	}
	m := &etcdMember{Name: name, DataDir: filepath.Join(c.dir, name), LogPath: filepath.Join(c.dir, name+".log"),
		ClientAddr: ports[0], PeerAddr: ports[1], HTTPAddr: ports[2]}
	c.Members = append(c.Members, m)
	return m, nil
}

// start starts m with its data directory; it does not wait for it.
func (c *etcdCluster) start(m *etcdMember) error {
	args := []string{"--name", m.Name, "--data-dir", m.DataDir, "--listen-client", m.ClientAddr, "--listen-client-http", m.HTTPAddr, "--listen-peer", m.PeerAddr,
		"--initial-cluster", c.initial}
	tlsFlags, err := c.tls.memberFlags(m)
	if err != nil {
		return err
	}
	args = append(append(append(args, tlsFlags...), c.extra...), m.flags...)
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.cmd, m.ready, m.done = cmd, make(chan struct{}), make(chan struct{})
	ready, done := m.ready, m.done
	go func() {
		s := bufio.NewScanner(stdout)
		closed := false
		for s.Scan() {
			if s.Text() == "ready" && !closed {
				close(ready)
				closed = true
			}
		}
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	if m.cli == nil {
		cli, err := c.tls.newClient(m.ClientAddr)
		if err != nil {
			return fmt.Errorf("client for %s: %w", m.Name, err)
		}
		m.cli = cli
	}
	return nil
}

func (c *etcdCluster) startAll(ctx context.Context) error {
	for _, m := range c.Members {
		if err := c.start(m); err != nil {
			return err
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (m *etcdMember) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *etcdMember) pid() int {
	if !m.running() {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *etcdMember) waitReady(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-m.done:
		return fmt.Errorf("etcd member %s exited; see %s", m.Name, m.LogPath)
	case <-ctx.Done():
		return fmt.Errorf("etcd member %s not ready: %w", m.Name, ctx.Err())
	}
}

// kill sends SIGKILL to m and waits for it to exit.
func (m *etcdMember) kill() {
	if !m.running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// stop kills every member and closes the clients.
func (c *etcdCluster) stop() {
	for _, m := range c.Members {
		m.kill()
		if m.cli != nil {
			m.cli.Close()
			m.cli = nil
		}
	}
}

// status is m's own status (its member id, the leader it knows).
func (m *etcdMember) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return m.cli.Status(ctx, clientURL(m.ClientAddr))
}

// leader returns the running member that the running members name as
// leader.
func (c *etcdCluster) leader(ctx context.Context) (*etcdMember, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ids := map[uint64]*etcdMember{}
		var lead uint64
		for _, m := range c.Members {
			if !m.running() {
				continue
			}
			st, err := m.status(ctx)
			if err != nil {
				continue
			}
			ids[st.Header.GetMemberId()] = m
			if st.Leader != 0 {
				lead = st.Leader
			}
		}
		if l, ok := ids[lead]; ok && lead != 0 {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("etcd cluster has no leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *etcdCluster) followers(leader *etcdMember) []*etcdMember {
	var out []*etcdMember
	for _, m := range c.Members {
		if m != leader && m.running() {
			out = append(out, m)
		}
	}
	return out
}
