// Command etcdmember runs one embedded etcd member (go.etcd.io/etcd/server/v3)
// as its own process: the baseline tokenstore is compared with. Three of
// them on loopback form the cluster of "put the tokens in etcd" designs.
//
// It runs with etcd's defaults where the comparison does not need another
// value: fsync on (as tokenstore), default heartbeat and election timeout,
// serializable and linearizable reads as etcd serves them. --snapshot-count
// and --max-txn-ops exist so the scale run can set them the same way for
// every member; --quota-backend-bytes raises the 2 GiB default so a million
// keys fit.
//
// It prints "ready" on stdout once the member serves, and stops cleanly on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

func mustURL(s string) (url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, err
	}
	return *u, nil
}

func run() error {
	var (
		name, dir, client, peer, initial, state, logLevel string
		snapshotCount, catchUp                            uint64
		maxTxnOps                                         uint
		quota                                             int64
	)
	flag.StringVar(&name, "name", "e1", "member name")
	flag.StringVar(&dir, "data-dir", "", "data directory")
	flag.StringVar(&client, "listen-client", "127.0.0.1:2379", "client address host:port")
	flag.StringVar(&peer, "listen-peer", "127.0.0.1:2380", "peer address host:port")
	flag.StringVar(&initial, "initial-cluster", "", "name=http://host:port,...")
	flag.StringVar(&state, "initial-cluster-state", "new", "new or existing")
	flag.StringVar(&logLevel, "log-level", "warn", "etcd log level")
	flag.Uint64Var(&snapshotCount, "snapshot-count", 0, "etcd --snapshot-count (0: etcd's default)")
	flag.Uint64Var(&catchUp, "snapshot-catchup-entries", 0, "etcd --snapshot-catchup-entries (0: etcd's default)")
	flag.UintVar(&maxTxnOps, "max-txn-ops", 0, "etcd --max-txn-ops (0: etcd's default)")
	flag.Int64Var(&quota, "quota-backend-bytes", 8<<30, "etcd --quota-backend-bytes")
	flag.Parse()
	if dir == "" {
		return fmt.Errorf("--data-dir is required")
	}

	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir, cfg.LogLevel = name, dir, logLevel
	cfg.InitialClusterToken = "etcdbench"
	cfg.ClusterState = state
	cu, err := mustURL("http://" + client)
	if err != nil {
		return err
	}
	pu, err := mustURL("http://" + peer)
	if err != nil {
		return err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	if initial == "" {
		initial = name + "=" + pu.String()
	}
	cfg.InitialCluster = initial
	if snapshotCount > 0 {
		cfg.SnapshotCount = snapshotCount
	}
	if catchUp > 0 {
		cfg.SnapshotCatchUpEntries = catchUp
	}
	if maxTxnOps > 0 {
		cfg.MaxTxnOps = maxTxnOps
	}
	cfg.QuotaBackendBytes = quota

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case <-time.After(5 * time.Minute):
		e.Server.Stop()
		return fmt.Errorf("member not ready after 5 minutes")
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-e.Err():
		return err
	case <-ctx.Done():
		return nil
	}
}
