package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	lg "github.com/tokenstore/tokenstore/cluster-test/cmd/tsbench/loadgen"
	"github.com/tokenstore/tokenstore/server/token"
)

// etcdSet is the tokens stored in etcd the way a proxy on etcd would keep
// them: key "tokens/<id>", value the very TokenRecord bytes tokenstore
// stores for a token (same salt, hash, user and fields), so both systems
// hold records of the same size.
type etcdSet struct {
	keys, secrets, users []string
}

// newRecord makes the record of a new token for user, as CreateToken does.
func newRecord(user string) (id, secret string, val []byte, err error) {
	if id, err = token.NewID(time.Now()); err != nil {
		return
	}
	if secret, err = token.NewSecret(); err != nil {
		return
	}
	salt, err := token.NewSalt()
	if err != nil {
		return
	}
	h := token.Hash(salt, secret)
	rec := &raftstorev1.TokenRecord{Format: 1, Id: id, Salt: salt, SecretHash: h[:],
		User: &raftstorev1.User{Username: user, Groups: []string{"bench"}}, CreatedUnixNano: time.Now().UnixNano()}
	val, err = proto.Marshal(rec)
	return
}

// putTokens stores n tokens in etcd through cli with conc concurrent Puts.
func putTokens(ctx context.Context, clis []*clientv3.Client, n, conc int, prefix string) (*etcdSet, error) {
	set := &etcdSet{keys: make([]string, n), secrets: make([]string, n), users: make([]string, n)}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || errs[w] != nil {
					return
				}
				user := prefix + strconv.Itoa(i)
				id, secret, val, err := newRecord(user)
				if err == nil {
					_, err = clis[w%len(clis)].Put(ctx, "tokens/"+id, string(val))
				}
				if err != nil {
					errs[w] = fmt.Errorf("put token %d: %w", i, err)
					return
				}
				set.keys[i], set.secrets[i], set.users[i] = "tokens/"+id, secret, user
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return set, ctx.Err()
}

// verifyRecord is the check a proxy on etcd makes: the record decodes, is
// neither revoked, disabled nor expired, the secret matches its salted
// hash, and it names the expected user.
func verifyRecord(val []byte, secret, user string) (*raftstorev1.TokenRecord, error) {
	rec := &raftstorev1.TokenRecord{}
	if err := proto.Unmarshal(val, rec); err != nil {
		return nil, lg.Wrongf("decode record: %v", err)
	}
	if rec.GetRevoked() || rec.GetDisabled() || (rec.GetExpiresUnixNano() != 0 && rec.GetExpiresUnixNano() < time.Now().UnixNano()) {
		return nil, lg.Wrongf("token not valid")
	}
	if !token.Matches(rec.GetSalt(), secret, rec.GetSecretHash()) {
		return nil, lg.Wrongf("secret does not match")
	}
	if rec.GetUser().GetUsername() != user {
		return nil, lg.Wrongf("record of %q, want %q", rec.GetUser().GetUsername(), user)
	}
	return rec, nil
}

// etcdAuthOp authenticates the set's tokens in turn with one Get each,
// serializable (the member's local state) or linearizable (etcd's default,
// a ReadIndex through the leader).
func etcdAuthOp(clis []*clientv3.Client, set *etcdSet, serializable bool) lg.Op {
	n := len(set.keys)
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		r, err := clis[w%len(clis)].Get(ctx, set.keys[i], opts...)
		if err != nil {
			return err
		}
		if len(r.Kvs) != 1 {
			return lg.Wrongf("token %s not found", set.keys[i])
		}
		_, err = verifyRecord(r.Kvs[0].Value, set.secrets[i], set.users[i])
		return err
	}
}

// etcdNaiveOp is the naive lastUsedAt design on etcd: Get the record
// (linearizable, clientv3's default), verify it, then a Txn that puts the
// record with lastUsedAt = now only if the key's mod revision is still the
// one read. A lost compare is a failed authentication (the proxy of that
// design answers 401) and is returned as a wrong answer.
func etcdNaiveOp(clis []*clientv3.Client, set *etcdSet) lg.Op {
	n := len(set.keys)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		cli := clis[w%len(clis)]
		r, err := cli.Get(ctx, set.keys[i])
		if err != nil {
			return err
		}
		if len(r.Kvs) != 1 {
			return lg.Wrongf("token %s not found", set.keys[i])
		}
		rec, err := verifyRecord(r.Kvs[0].Value, set.secrets[i], set.users[i])
		if err != nil {
			return err
		}
		rec.LastUsedUnixNano = time.Now().UnixNano()
		val, err := proto.Marshal(rec)
		if err != nil {
			return err
		}
		t, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(set.keys[i]), "=", r.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(set.keys[i], string(val))).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return lg.Wrongf("conflict: lastUsedAt compare-and-swap lost (a naive proxy answers 401)")
		}
		return nil
	}
}

// etcdPutOp writes one new token record per call, the etcd counterpart
// of CreateToken.
func etcdPutOp(clis []*clientv3.Client) lg.Op {
	return func(ctx context.Context, w, seq int) error {
		id, _, val, err := newRecord(fmt.Sprintf("bench-put-w%d-%d", w, seq))
		if err != nil {
			return err
		}
		_, err = clis[w%len(clis)].Put(ctx, "tokens/"+id, string(val))
		return err
	}
}

// withTimeout bounds every request of do, as a proxy with a request
// timeout does: a request still waiting then counts as failed.
func withTimeout(d time.Duration, do lg.Op) lg.Op {
	return func(ctx context.Context, w, seq int) error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return do(ctx, w, seq)
	}
}
