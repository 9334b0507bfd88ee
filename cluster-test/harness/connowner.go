package harness

import "net"

// ConnOwner names the member whose process holds the other end of conn, a
// loopback connection accepted by a test's own server (an OIDC provider,
// say), or "" when it is no running member. Tests use it to prove which
// members contacted a server. Linux only (it reads /proc); "" elsewhere.
func (c *Cluster) ConnOwner(conn net.Conn) string {
	name, _ := c.connOwner(conn)
	return name
}
