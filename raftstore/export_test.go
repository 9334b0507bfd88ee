package raftstore

// Crash stops the node the way a SIGKILL leaves its data directory: the
// loops stop, the open state database batch is dropped uncommitted (an
// uncommitted bbolt transaction writes nothing to the file), and the
// databases are closed without the commit a clean Stop makes.
func (n *Node) Crash() {
	n.stopOnce.Do(func() {
		close(n.stopc)
		n.trans.Stop()
		n.raft.Stop()
		n.wg.Wait()
		n.proposals.failAll(ErrStopped)
		n.logs.Close()
		n.stateMu.Lock()
		n.state.discard()
		n.stateMu.Unlock()
		close(n.done)
	})
}

// DurableIndex is the applied index the state database holds durably: the
// point a restart replays the log from.
func (n *Node) DurableIndex() uint64 {
	n.stateMu.RLock()
	defer n.stateMu.RUnlock()
	return n.state.batch.durable.Load()
}
