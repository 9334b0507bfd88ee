package state

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
	"github.com/tokenstore/tokenstore/server/token"
)

// FuzzApply feeds any payload to the state machine's Apply, the way
// raftstore hands it a committed entry, on a state holding tokens and RBAC
// objects. Properties:
//
//   - never a panic: an undecodable payload is an error;
//   - a failed Apply (error) or a refusal (Outcome.Err, rbac Result.Err)
//     changes nothing: nothing is staged in memory for Committed to
//     publish, and a refusal wrote nothing to the transaction (a failure's
//     transaction is rolled back by raftstore);
//   - a change is deterministic: the same payload on the same state
//     writes the same bytes and gives the same outcome (every member must
//     agree).
func FuzzApply(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "state.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	seedIDs := seedState(f, db)
	const index = 1000

	for _, cmd := range fuzzSeedCommands(seedIDs) {
		b, err := proto.Marshal(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("not a protobuf"))

	f.Fuzz(func(t *testing.T, payload []byte) {
		first := applyOnce(t, db, index, payload)
		if first.failed || first.refused {
			// A failure's writes are rolled back with its transaction
			// (raftstore stops); a refusal's transaction commits, so it
			// must have written nothing.
			if first.refused && !bytes.Equal(first.before, first.after) {
				t.Fatal("a refused command changed the transaction")
			}
			if first.staged {
				t.Fatalf("failed=%v refused=%v (%.200v), yet changes are staged for publishing", first.failed, first.refused, first.err)
			}
			return
		}
		second := applyOnce(t, db, index, payload)
		if !bytes.Equal(first.after, second.after) || first.outcome != second.outcome {
			t.Fatalf("the same payload applied twice to the same state differs:\n%s\n%s", first.outcome, second.outcome)
		}
	})
}

// applied is what one Apply did.
type applied struct {
	before, after   []byte
	failed, refused bool
	staged          bool
	err             error
	outcome         string
}

// applyOnce applies payload in a write transaction on a fresh State
// restored from db, records the transaction's contents before and after,
// and rolls back, leaving db as it was.
func applyOnce(t *testing.T, db *bolt.DB, index uint64, payload []byte) applied {
	t.Helper()
	tx, err := db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	s := New()
	if err := s.Restore(tx); err != nil {
		t.Fatal(err)
	}
	s.Committed(index - 1)
	rbacBefore := s.RBAC().View().Snapshot
	var a applied
	a.before = dumpTx(t, tx)
	res, err := s.Apply(tx, index, payload)
	a.after = dumpTx(t, tx)
	a.err, a.failed = err, err != nil
	switch r := res.(type) {
	case Outcome:
		a.refused = r.Err != nil
		a.outcome = fmt.Sprintf("%v %v %v %v", r.Record, r.Imported, r.Skipped, r.Err)
		if r.Err != nil && (r.Record != nil || len(r.Imported) > 0) {
			t.Fatalf("a refusal (%v) that returns records", r.Err)
		}
	case rbac.Result:
		a.refused = r.Err != nil
		a.outcome = fmt.Sprintf("%v %d %v", r.Changes, r.Revision, r.Err)
	case PurgeOutcome:
		// No refusal: listed ids not past the cutoff are left alone.
		a.outcome = fmt.Sprintf("purged %d", r.Purged)
		if r.Purged == 0 && !bytes.Equal(a.before, a.after) {
			t.Fatal("a purge that purged nothing changed the transaction")
		}
	case nil:
	default:
		t.Fatalf("Apply returned a %T", res)
	}
	if a.failed && res != nil && !reflect.ValueOf(res).IsZero() {
		t.Fatalf("Apply failed (%v) and returned %v", err, res)
	}
	a.staged = len(s.pending) > 0
	// Whatever RBAC staged is published by Committed: after a failure or a
	// refusal, the published snapshot must be the one before.
	s.Committed(index)
	if (a.failed || a.refused) && s.RBAC().View().Snapshot != rbacBefore {
		a.staged = true
	}
	return a
}

// dumpTx is every bucket's keys and values in tx, in order.
func dumpTx(t *testing.T, tx *bolt.Tx) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		fmt.Fprintf(&buf, "[%q]\n", name)
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return errors.New("nested bucket: dump it too")
			}
			fmt.Fprintf(&buf, "%q=%x\n", k, v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seedState commits two tokens (one revoked) and a Role and RoleBinding
// to db, and returns the token ids.
func seedState(f *testing.F, db *bolt.DB) []string {
	s := New()
	if err := db.Update(s.Init); err != nil {
		f.Fatal(err)
	}
	ids := []string{"token-aaaa", "token-bbbb"}
	role := `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r","namespace":"ns"},"rules":[{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}]}`
	binding := `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"ns"},"subjects":[{"kind":"User","name":"alice"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}}`
	cmds := []*raftstorev1.Command{
		createCmd(ids[0]), createCmd(ids[1]),
		{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: ids[1], RevokedUnixNano: 5}}},
		{Op: &raftstorev1.Command_ApplyRbac{ApplyRbac: &raftstorev1.ApplyRBAC{Objects: []*raftstorev1.RBACObject{
			{Encoding: 1, Data: []byte(role)}, {Encoding: 1, Data: []byte(binding)}}}}},
	}
	for i, cmd := range cmds {
		b, _ := proto.Marshal(cmd)
		err := db.Update(func(tx *bolt.Tx) error {
			res, err := s.Apply(tx, uint64(i+1), b)
			if o, ok := res.(Outcome); ok && o.Err != nil {
				return o.Err
			}
			return err
		})
		if err != nil {
			f.Fatalf("seed command %d: %v", i, err)
		}
		s.Committed(uint64(i + 1))
	}
	return ids
}

func createCmd(id string) *raftstorev1.Command {
	salt := make([]byte, token.SaltBytes)
	h := token.Hash(salt, "secretsecretsecretsecretsecretsecret")
	return &raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{
		Id: id, Salt: salt, SecretHash: h[:], User: &raftstorev1.User{Username: "alice", Groups: []string{"g"}}, CreatedUnixNano: 1}}}}
}

// fuzzSeedCommands is one command of every op, valid and refused.
func fuzzSeedCommands(ids []string) []*raftstorev1.Command {
	yes, exp := true, int64(99)
	role2 := `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"agg"},"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"a":"b"}}]}}`
	return []*raftstorev1.Command{
		createCmd("token-new"),
		createCmd(ids[0]), // exists
		{Op: &raftstorev1.Command_PurgeTokens{PurgeTokens: &raftstorev1.PurgeTokens{Ids: ids, CutoffUnixNano: 10}}},             // purges the revoked one
		{Op: &raftstorev1.Command_PurgeTokens{PurgeTokens: &raftstorev1.PurgeTokens{Ids: []string{ids[1]}, CutoffUnixNano: 4}}}, // revoked after the cutoff
		{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{Id: "token-x"}}}},
		{Op: &raftstorev1.Command_UpdateToken{UpdateToken: &raftstorev1.UpdateToken{Id: ids[0], Disabled: &yes, ExpiresUnixNano: &exp}}},
		{Op: &raftstorev1.Command_UpdateToken{UpdateToken: &raftstorev1.UpdateToken{Id: ids[1], Disabled: &yes}}}, // revoked
		{Op: &raftstorev1.Command_UpdateToken{UpdateToken: &raftstorev1.UpdateToken{Id: ids[0], ExpectedUpdateRevision: 7, Disabled: &yes}}},
		{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: ids[0], RevokedUnixNano: 9}}},
		{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: "token-none"}}},
		{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: &raftstorev1.RecordLastUsed{Uses: []*raftstorev1.LastUsed{{Id: ids[0], UnixNano: 50}, {Id: "token-none", UnixNano: 1}}}}},
		{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{SkipExisting: true, Records: []*raftstorev1.TokenRecord{
			createCmd("token-imp").GetCreateToken().GetRecord(), createCmd(ids[0]).GetCreateToken().GetRecord(),
			{Id: "kubeconfig-u-x", RancherHash: "$2:c2FsdC0xMjM:jNOtyLLyBc5tg37zM7i24WeliZZV4FGY+gjDWOfONnM", User: &raftstorev1.User{Username: "u"}}}}}},
		{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{Records: []*raftstorev1.TokenRecord{
			createCmd("token-imp").GetCreateToken().GetRecord(), createCmd("token-imp").GetCreateToken().GetRecord()}}}},
		// bbolt refuses the second key (longer than bolt.MaxKeySize) after
		// the first record was staged: Apply fails and must stage nothing.
		{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{Records: []*raftstorev1.TokenRecord{
			createCmd("token-imp").GetCreateToken().GetRecord(), createCmd(strings.Repeat("k", bolt.MaxKeySize+1)).GetCreateToken().GetRecord()}}}},
		{Op: &raftstorev1.Command_ApplyRbac{ApplyRbac: &raftstorev1.ApplyRBAC{Prune: true, Objects: []*raftstorev1.RBACObject{{Encoding: 1, Data: []byte(role2)}}}}},
		{Op: &raftstorev1.Command_ApplyRbac{ApplyRbac: &raftstorev1.ApplyRBAC{ExpectedRevision: 3, Objects: []*raftstorev1.RBACObject{{Encoding: 2, Data: []byte("{}")}}}}},
		{Op: &raftstorev1.Command_DeleteRbac{DeleteRbac: &raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: "Role", Namespace: "ns", Name: "r"}}}}},
		{Op: &raftstorev1.Command_DeleteRbac{DeleteRbac: &raftstorev1.DeleteRBAC{Refs: []*raftstorev1.RBACRef{{Kind: "Role", Namespace: "ns", Name: "nope"}}}}},
		{},
	}
}
