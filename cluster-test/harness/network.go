package harness

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Network is the set of TCP proxies that carry all peer traffic of a
// cluster started with Options.Proxies. Every member has one proxy listener
// (its advertised peer address, the one in --initial-cluster); the proxy
// finds out which member opened each connection (see socketOwner), so the
// directed link From→To of every connection is known and faults apply per
// link:
//
//	Pass        bytes flow.
//	Delay       bytes flow after Rule.Delay, order kept (both directions).
//	CutForward  one-way cut: bytes From→To are dropped, To→From still flow.
//	Blackhole   bytes in both directions are dropped; the connection stays
//	            open and stalls, as with a real black hole (no reset).
//	Refuse      connections are reset and new ones closed on accept.
//
// Link From→To carries the connections member From opens to member To: the
// raft messages From sends to To and the answers to From's RPCs (raftstore
// streams messages one way per connection), so cutting i→j but not j→i is an
// asymmetric partition.
//
// A byte stream that lost bytes is corrupt: when its link passes again the
// proxy closes the connection (the member reconnects), as a real connection
// would have been reset after a long enough black hole.
//
// Faults are rules; several may be active at once and the most severe wins
// per link (Refuse > Blackhole > CutForward > Delay > Pass; delays add up).
// Removing a rule restores what the remaining rules say. Network is safe
// for concurrent use.
type Network struct {
	mu      sync.Mutex
	rules   map[int][]Rule
	nextID  int
	proxies map[string]*proxy
	conns   map[*proxyConn]struct{}
	closed  bool
	// owner names the member that opened a connection, "" when unknown;
	// closed reports that its opener had closed it already.
	owner   func(c net.Conn) (name string, closed bool)
	unknown atomic.Int64
	// dead counts connections closed by their opener before they could
	// be attributed; they are refused, so they carry nothing.
	dead atomic.Int64
	// accepted counts connections per link, for tests and reports.
	accepted map[Link]int
}

// Mode is what a link does with bytes.
type Mode int

// Link modes, from harmless to most severe.
const (
	Pass Mode = iota
	Delay
	CutForward
	Blackhole
	Refuse
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case CutForward:
		return "cut"
	case Blackhole:
		return "blackhole"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Link is the direction of traffic from member From to member To.
type Link struct{ From, To string }

func (l Link) String() string { return l.From + "→" + l.To }

// Rule sets one link's mode while it is in force.
type Rule struct {
	Link  Link
	Mode  Mode
	Delay time.Duration // for Delay
}

func (r Rule) String() string {
	if r.Mode == Delay {
		return fmt.Sprintf("%s %s %v", r.Link, r.Mode, r.Delay)
	}
	return fmt.Sprintf("%s %s", r.Link, r.Mode)
}

// linkState is the combined effect of the rules on one link.
type linkState struct {
	mode  Mode
	delay time.Duration
}

func (s linkState) dropForward() bool  { return s.mode == CutForward || s.mode >= Blackhole }
func (s linkState) dropBackward() bool { return s.mode >= Blackhole }

// newNetwork returns an empty network; owner identifies connecting members.
func newNetwork(owner func(net.Conn) (string, bool)) *Network {
	return &Network{
		rules: map[int][]Rule{}, proxies: map[string]*proxy{}, conns: map[*proxyConn]struct{}{},
		owner: owner, accepted: map[Link]int{},
	}
}

// proxy listens for member To's peer connections and forwards to target.
type proxy struct {
	to     string
	target string
	l      net.Listener
	done   chan struct{}
}

// listen starts the proxy for member to, forwarding to target (the
// member's real --listen-peer address), on addr.
func (n *Network) listen(to, addr, target string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy for %s: %w", to, err)
	}
	p := &proxy{to: to, target: target, l: l, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		l.Close()
		return errors.New("network closed")
	}
	n.proxies[to] = p
	n.mu.Unlock()
	go n.accept(p)
	return nil
}

// Addr is the proxy address members dial to reach member name.
func (n *Network) Addr(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.proxies[name]; ok {
		return p.l.Addr().String()
	}
	return ""
}

// Apply puts rules in force and returns an id for Remove.
func (n *Network) Apply(rules ...Rule) int {
	n.mu.Lock()
	n.nextID++
	id := n.nextID
	n.rules[id] = append([]Rule(nil), rules...)
	n.mu.Unlock()
	n.enforce()
	return id
}

// Remove lifts the rules Apply returned id for.
func (n *Network) Remove(id int) {
	n.mu.Lock()
	delete(n.rules, id)
	n.mu.Unlock()
	n.enforce()
}

// Heal lifts every rule.
func (n *Network) Heal() {
	n.mu.Lock()
	n.rules = map[int][]Rule{}
	n.mu.Unlock()
	n.enforce()
}

// Rules lists the rules in force, for reports.
func (n *Network) Rules() []Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []int
	for id := range n.rules {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var out []Rule
	for _, id := range ids {
		out = append(out, n.rules[id]...)
	}
	return out
}

// Unknown counts connections whose opening member could not be found.
// They pass unaffected by rules; a non-zero count means faults were not
// applied to some traffic.
func (n *Network) Unknown() int64 { return n.unknown.Load() }

// Dead counts connections refused because their opener had closed them
// before the proxy could tell whose they were (a member killed just after
// connecting).
func (n *Network) Dead() int64 { return n.dead.Load() }

// Accepted returns how many connections each link has carried.
func (n *Network) Accepted() map[Link]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[Link]int, len(n.accepted))
	for l, c := range n.accepted {
		out[l] = c
	}
	return out
}

// Describe summarises the rules in force.
func (n *Network) Describe() string {
	rs := n.Rules()
	if len(rs) == 0 {
		return "all links pass"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// state is the combined effect of the rules on l; n.mu must be held.
func (n *Network) stateLocked(l Link) linkState {
	var s linkState
	for _, rs := range n.rules {
		for _, r := range rs {
			if r.Link != l {
				continue
			}
			if r.Mode > s.mode {
				s.mode = r.Mode
			}
			if r.Mode == Delay {
				s.delay += r.Delay
			}
		}
	}
	if s.mode == Pass && s.delay > 0 {
		s.mode = Delay
	}
	return s
}

func (n *Network) state(l Link) linkState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stateLocked(l)
}

// enforce closes the connections the current rules no longer allow: all
// of a refused link, and those that lost bytes in a direction that flows
// again.
func (n *Network) enforce() {
	n.mu.Lock()
	var victims []*proxyConn
	for c := range n.conns {
		s := n.stateLocked(c.link)
		if s.mode == Refuse || (c.lostFwd.Load() && !s.dropForward()) || (c.lostBwd.Load() && !s.dropBackward()) {
			victims = append(victims, c)
		}
	}
	n.mu.Unlock()
	for _, c := range victims {
		c.close()
	}
}

// Close stops every proxy and closes every connection.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	ps := n.proxies
	n.proxies = map[string]*proxy{}
	cs := n.conns
	n.conns = map[*proxyConn]struct{}{}
	n.mu.Unlock()
	for _, p := range ps {
		p.l.Close()
		<-p.done
	}
	for c := range cs {
		c.close()
	}
}

func (n *Network) accept(p *proxy) {
	defer close(p.done)
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go n.serve(p, c)
	}
}

// serve identifies who opened c and carries its bytes to p's member.
func (n *Network) serve(p *proxy, c net.Conn) {
	from, closed := "", false
	if n.owner != nil {
		from, closed = n.owner(c)
	}
	if from == "" && closed {
		// Its opener is gone (a member killed just after connecting):
		// there is no one to carry bytes for.
		n.dead.Add(1)
		resetClose(c)
		return
	}
	if from == "" {
		n.unknown.Add(1)
		from = "?"
	}
	link := Link{From: from, To: p.to}
	n.mu.Lock()
	n.accepted[link]++
	refused := n.closed || n.stateLocked(link).mode == Refuse
	n.mu.Unlock()
	if refused {
		resetClose(c)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		resetClose(c)
		return
	}
	pc := &proxyConn{link: link, down: c, up: up}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		pc.close()
		return
	}
	n.conns[pc] = struct{}{}
	n.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.pump(pc, true) }()
	go func() { defer wg.Done(); n.pump(pc, false) }()
	wg.Wait()
	pc.close()
	n.mu.Lock()
	delete(n.conns, pc)
	n.mu.Unlock()
}

// resetClose closes c with a TCP reset rather than an orderly FIN.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// proxyConn is one member connection through a proxy: down is the side of
// the member that dialled (From), up the side of the member dialled (To).
type proxyConn struct {
	link     Link
	down, up net.Conn
	lostFwd  atomic.Bool
	lostBwd  atomic.Bool
	once     sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		resetClose(c.down)
		resetClose(c.up)
	})
}

// chunk is bytes read at one moment, to be written at another.
type chunk struct {
	b  []byte
	at time.Time
}

// pump copies one direction (forward: From→To) of c, applying the link's
// state at the moment each read returns. A writer goroutine delivers
// chunks at their due time, in order.
func (n *Network) pump(c *proxyConn, forward bool) {
	src, dst := c.down, c.up
	lost := &c.lostFwd
	if !forward {
		src, dst = c.up, c.down
		lost = &c.lostBwd
	}
	q := make(chan chunk, 1024)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ch := range q {
			if d := time.Until(ch.at); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.b); err != nil {
				c.close()
				for range q { // drain so the reader never blocks
				}
				return
			}
		}
	}()
	defer func() {
		close(q)
		<-writerDone
		c.close()
	}()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			s := n.state(c.link)
			drop := s.dropBackward()
			if forward {
				drop = s.dropForward()
			}
			if drop {
				lost.Store(true)
			} else {
				q <- chunk{b: append([]byte(nil), buf[:k]...), at: time.Now().Add(s.delay)}
			}
		}
		if err != nil { // EOF, reset, or closed by enforce
			return
		}
	}
}
