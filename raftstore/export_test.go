package raftstore

import (
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

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

// PendingProposalForTest registers a proposal of payload at n without
// handing it to raft, as Propose does before submitting it: it returns the
// raft entry data and a channel signalled when the proposal is handed back
// as undelivered.
func (n *Node) PendingProposalForTest(payload []byte) (data []byte, undelivered <-chan struct{}, err error) {
	id, w := n.proposals.register()
	data, err = proto.Marshal(&raftstorev1.Entry{Format: entryFormatCommand, RequestId: id, Proposer: n.cfg.ID, Payload: payload})
	return data, w.undelivered, err
}

// LeadTransfereeForTest is the member raft is transferring leadership to,
// 0 when no transfer is in progress.
func (n *Node) LeadTransfereeForTest() uint64 { return n.raft.Status().LeadTransferee }
