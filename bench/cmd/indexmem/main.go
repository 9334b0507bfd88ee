// Command indexmem measures what the in-memory token index of one member
// costs per token: it applies -tokens CreateToken commands to a
// server/state.State through bbolt transactions (as a member's apply loop
// does, NoSync since durability is not measured), then reports the live
// heap per token and writes a heap profile for `go tool pprof`. It is the
// pprof half of the scale figures: the member's resident memory also holds
// bbolt's mmap of state.db pages, the raft log's page cache, the Go runtime's slack and
// gRPC buffers, which this isolates from the index itself.
//
//	go run ./cmd/indexmem -tokens 1000000 -memprofile /tmp/index.prof
//	go tool pprof -sample_index=inuse_space -top /tmp/index.prof
//	go run ./cmd/indexmem -tokens 1000000 -restore   # also time Restore
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/state"
	"github.com/tokenstore/tokenstore/server/token"
)

func main() {
	n := flag.Int("tokens", 1_000_000, "tokens to create")
	prof := flag.String("memprofile", "", "write a heap profile here")
	restore := flag.Bool("restore", false, "also time rebuilding the index from state.db (what a restarting member does)")
	flag.Parse()
	if err := run(*n, *prof, *restore); err != nil {
		fmt.Fprintln(os.Stderr, "indexmem:", err)
		os.Exit(1)
	}
}

func command(user string) ([]byte, error) {
	id, err := token.NewID(time.Now())
	if err != nil {
		return nil, err
	}
	secret, err := token.NewSecret()
	if err != nil {
		return nil, err
	}
	salt, err := token.NewSalt()
	if err != nil {
		return nil, err
	}
	h := token.Hash(salt, secret)
	rec := &raftstorev1.TokenRecord{Format: 1, Id: id, Salt: salt, SecretHash: h[:],
		User: &raftstorev1.User{Username: user, Groups: []string{"bench"}}, CreatedUnixNano: time.Now().UnixNano()}
	return proto.Marshal(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: rec}}})
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func run(n int, prof string, restore bool) error {
	dir, err := os.MkdirTemp("", "indexmem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	s := state.New()
	if err := db.Update(s.Init); err != nil {
		return err
	}
	before := heap()
	index := uint64(0)
	for done := 0; done < n; {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < 10000 && done < n; i++ {
				index++
				payload, err := command(fmt.Sprintf("scale-user-%d", done))
				if err != nil {
					return err
				}
				if _, err := s.Apply(tx, index, payload); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.Committed(index)
	}
	after := heap()
	fmt.Printf("tokens %d: live heap %.1f MiB for the index, %.0f bytes per token (GOGC=100 lets the heap grow to about twice the live data)\n",
		s.TokenCount(), float64(after-before)/(1<<20), float64(after-before)/float64(n))
	if restore {
		r := state.New()
		start := time.Now()
		if err := db.View(r.Restore); err != nil {
			return err
		}
		fmt.Printf("restore: index of %d tokens rebuilt from state.db in %v\n", r.TokenCount(), time.Since(start).Round(time.Millisecond))
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	runtime.KeepAlive(s)
	return nil
}
