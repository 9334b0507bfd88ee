// Package discovery finds the other members of a cluster through gossip
// (hashicorp/memberlist). Each member gossips who it is: name, raft id,
// cluster id (0 while it has none), peer and client addresses, version and
// a random bootstrap nonce. The server uses it to join an existing cluster,
// to bootstrap exactly one new cluster with --bootstrap-expect, to learn
// members' new addresses after restarts, and to report gossip health.
//
// Concurrency: every method is safe for concurrent use. The OnUpdate
// callback runs on memberlist's goroutines and must not block.
package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a member gossips about itself.
type Meta struct {
	Name       string `json:"n"`
	MemberID   uint64 `json:"i,string,omitempty"`
	ClusterID  uint64 `json:"c,string,omitempty"`
	PeerAddr   string `json:"p"`
	ClientAddr string `json:"a,omitempty"`
	Version    string `json:"v,omitempty"`
	// Nonce is random per process start; bootstrapping members derive the
	// new cluster's identity from the nonces of the set, so a cluster formed
	// again from the same names gets new ids.
	Nonce string `json:"b,omitempty"`
}

// Peer is a member as gossip sees it.
type Peer struct {
	Meta
	// State is "alive", "suspect" or "dead".
	State string
	Addr  string // gossip address
}

// Config configures Start.
type Config struct {
	// Bind is the gossip listen address host:port (TCP and UDP).
	Bind string
	// Advertise is the address others reach this member's gossip at
	// (default Bind).
	Advertise string
	// Seeds are gossip addresses (or DNS names resolving to several) to join.
	Seeds []string
	Meta  Meta
	// OnUpdate is told about every join, update and leave of another member.
	OnUpdate func(Peer)
	Logger   *slog.Logger
	// SecretKey (16, 24 or 32 bytes), when set, encrypts and authenticates
	// gossip: a process without it can neither read nor inject member
	// metadata.
	SecretKey []byte
}

// Discovery is a running gossip member.
type Discovery struct {
	cfg  Config
	ml   *memberlist.Memberlist
	mu   sync.Mutex
	meta Meta
	// gone holds members memberlist declared dead or left; its member list
	// no longer shows them.
	gone  map[string]bool
	stopc chan struct{}
	wg    sync.WaitGroup
}

// Start begins gossiping and keeps trying the seeds in the background until
// another member is found.
func Start(cfg Config) (*Discovery, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.Bind, err)
	}
	d := &Discovery{cfg: cfg, meta: cfg.Meta, gone: map[string]bool{}, stopc: make(chan struct{})}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.Name
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	} else if host != "0.0.0.0" && host != "::" {
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	// With a wildcard bind and no advertise address, memberlist picks this
	// host's private address itself: advertising 0.0.0.0 would be useless.
	// Faster failure detection than the WAN-ish defaults, and let a member
	// that restarted at a new address reclaim its name quickly.
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.GossipInterval = 100 * time.Millisecond
	mc.SuspicionMult = 3
	mc.DeadNodeReclaimTime = time.Second
	mc.Delegate = delegate{d}
	mc.SecretKey = cfg.SecretKey
	mc.Events = events{d}
	mc.Logger = log.New(slogWriter{cfg.Logger.With("component", "gossip")}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	d.ml = ml
	d.wg.Add(1)
	go d.joinLoop()
	return d, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, nil
}

// joinLoop retries the seeds while this member knows nobody else, so
// members may start in any order.
func (d *Discovery) joinLoop() {
	defer d.wg.Done()
	if len(d.cfg.Seeds) == 0 {
		return
	}
	for {
		if d.ml.NumMembers() <= 1 {
			if _, err := d.ml.Join(d.cfg.Seeds); err != nil {
				d.cfg.Logger.Debug("gossip join attempt failed", "seeds", strings.Join(d.cfg.Seeds, ","), "err", err)
			}
		}
		select {
		case <-d.stopc:
			return
		case <-time.After(time.Second):
		}
	}
}

// SetMeta changes what this member gossips and spreads it.
func (d *Discovery) SetMeta(m Meta) error {
	d.mu.Lock()
	d.meta = m
	d.mu.Unlock()
	if err := d.ml.UpdateNode(2 * time.Second); err != nil {
		return fmt.Errorf("gossip new member metadata: %w", err)
	}
	return nil
}

// Peers returns every member gossip knows of, this one included, by name.
func (d *Discovery) Peers() []Peer {
	var out []Peer
	for _, n := range d.ml.Members() {
		p, ok := toPeer(n)
		if ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Health returns the gossip state of the member named name: "alive",
// "suspect", "dead" or "unknown".
func (d *Discovery) Health(name string) string {
	for _, n := range d.ml.Members() {
		if n.Name == name {
			return stateName(n.State)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone[name] {
		return "dead"
	}
	return "unknown"
}

// Stop leaves the gossip pool and shuts down.
func (d *Discovery) Stop() {
	close(d.stopc)
	d.wg.Wait()
	_ = d.ml.Leave(time.Second)
	_ = d.ml.Shutdown()
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	default:
		return "dead"
	}
}

func toPeer(n *memberlist.Node) (Peer, bool) {
	var m Meta
	if err := json.Unmarshal(n.Meta, &m); err != nil || m.Name == "" {
		return Peer{}, false
	}
	return Peer{Meta: m, State: stateName(n.State), Addr: n.Address()}, true
}

type delegate struct{ d *Discovery }

func (g delegate) NodeMeta(limit int) []byte {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	b, _ := json.Marshal(g.d.meta)
	if len(b) > limit {
		return nil
	}
	return b
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ d *Discovery }

func (e events) notify(n *memberlist.Node, dead bool) {
	if n.Name == e.d.cfg.Meta.Name {
		return
	}
	e.d.mu.Lock()
	e.d.gone[n.Name] = dead
	e.d.mu.Unlock()
	if e.d.cfg.OnUpdate == nil {
		return
	}
	p, ok := toPeer(n)
	if !ok {
		return
	}
	if dead {
		p.State = "dead"
	}
	e.d.cfg.OnUpdate(p)
}

func (e events) NotifyJoin(n *memberlist.Node)   { e.notify(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.notify(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.notify(n, false) }

// slogWriter sends memberlist's log lines to slog: warnings and errors as
// such, the rest at debug.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "[ERR]"):
		w.l.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.l.Warn(line)
	default:
		w.l.Debug(line)
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// ErrNoCluster is returned while no existing cluster is visible.
var ErrNoCluster = errors.New("no existing cluster found through gossip")
