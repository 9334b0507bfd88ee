package loadgen

import (
	"fmt"

	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// ConnPool holds n gRPC connections per member, so the load is spread over
// several HTTP/2 connections (and the server's per-connection goroutines)
// the way several clients would spread it.
type ConnPool struct {
	n     int
	conns map[string][]*grpc.ClientConn
}

// NewConnPool returns a pool of n connections per member, made on first use.
func NewConnPool(n int) *ConnPool {
	return &ConnPool{n: n, conns: map[string][]*grpc.ClientConn{}}
}

func (p *ConnPool) get(m *harness.Member) ([]*grpc.ClientConn, error) {
	if cs, ok := p.conns[m.Name]; ok {
		return cs, nil
	}
	var cs []*grpc.ClientConn
	for i := 0; i < p.n; i++ {
		conn, err := m.Dial()
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, fmt.Errorf("connect to %s (%s): %w", m.Name, m.ClientAddr, err)
		}
		cs = append(cs, conn)
	}
	p.conns[m.Name] = cs
	return cs, nil
}

func (p *ConnPool) Auth(m *harness.Member) ([]tokenstorev1.AuthServiceClient, error) {
	cs, err := p.get(m)
	if err != nil {
		return nil, err
	}
	out := make([]tokenstorev1.AuthServiceClient, len(cs))
	for i, c := range cs {
		out[i] = tokenstorev1.NewAuthServiceClient(c)
	}
	return out, nil
}

func (p *ConnPool) Tokens(m *harness.Member) ([]tokenstorev1.TokenServiceClient, error) {
	cs, err := p.get(m)
	if err != nil {
		return nil, err
	}
	out := make([]tokenstorev1.TokenServiceClient, len(cs))
	for i, c := range cs {
		out[i] = tokenstorev1.NewTokenServiceClient(c)
	}
	return out, nil
}

func (p *ConnPool) Close() {
	for _, cs := range p.conns {
		for _, c := range cs {
			c.Close()
		}
	}
}
