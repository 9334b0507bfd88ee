package harness

import (
	"fmt"
	"os"
)

// FreePort reserves a loopback port for a test's own use (a gossip port,
// say). It is released before the process binds it.
func FreePort() (string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return "", err
	}
	return ports[0], nil
}

// NewPorts gives a stopped member new client, peer and HTTP ports (a pod
// that restarts with a new address). Only for clusters without proxies.
// Its gRPC clients follow on the next Start.
func (c *Cluster) NewPorts(m *Member) error {
	if m.Running() {
		return fmt.Errorf("%s is running", m.Name)
	}
	if c.Net != nil {
		return fmt.Errorf("NewPorts does not support clusters with proxies")
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	m.ClientAddr, m.PeerAddr, m.HTTPAddr, m.AdvertisePeer = ports[0], ports[1], ports[2], ports[1]
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
	return nil
}

// Wipe deletes a stopped member's data directory (a lost volume).
func (c *Cluster) Wipe(m *Member) error {
	if m.Running() {
		return fmt.Errorf("%s is running", m.Name)
	}
	return os.RemoveAll(m.DataDir)
}
