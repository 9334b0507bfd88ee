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
// With --cert, --key and --ca it serves clients over TLS and requires a
// client certificate signed by --ca (etcd's --client-cert-auth); with
// --peer-cert, --peer-key and --peer-ca its peers talk mutual TLS. The
// comparison runs both, because tokenstore always serves TLS with client
// certificates there: the two sides then pay the same transport cost.
// --listen-client-http moves etcd's HTTP services (health, metrics, the
// JSON gateway) to their own listener, as etcd advises for production: a
// TLS client listener that also serves HTTP runs gRPC inside net/http's
// server (grpc-go's ServeHTTP, much slower than its own transport), and
// the comparison would then measure that handicap rather than etcd.
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

	"go.etcd.io/etcd/client/pkg/v3/transport"
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
		name, dir, client, clientHTTP, peer, initial, state, logLevel string
		snapshotCount, catchUp                                        uint64
		maxTxnOps                                                     uint
		quota                                                         int64
		cert, key, ca, peerCert, peerKey, peerCA                      string
	)
	flag.StringVar(&name, "name", "e1", "member name")
	flag.StringVar(&dir, "data-dir", "", "data directory")
	flag.StringVar(&client, "listen-client", "127.0.0.1:2379", "client address host:port")
	flag.StringVar(&clientHTTP, "listen-client-http", "", "address host:port for HTTP-only client traffic (health, metrics, gateway); empty: on --listen-client")
	flag.StringVar(&peer, "listen-peer", "127.0.0.1:2380", "peer address host:port")
	flag.StringVar(&initial, "initial-cluster", "", "name=http://host:port,...")
	flag.StringVar(&state, "initial-cluster-state", "new", "new or existing")
	flag.StringVar(&logLevel, "log-level", "warn", "etcd log level")
	flag.Uint64Var(&snapshotCount, "snapshot-count", 0, "etcd --snapshot-count (0: etcd's default)")
	flag.Uint64Var(&catchUp, "snapshot-catchup-entries", 0, "etcd --snapshot-catchup-entries (0: etcd's default)")
	flag.UintVar(&maxTxnOps, "max-txn-ops", 0, "etcd --max-txn-ops (0: etcd's default)")
	flag.Int64Var(&quota, "quota-backend-bytes", 8<<30, "etcd --quota-backend-bytes")
	flag.StringVar(&cert, "cert", "", "client listener certificate (TLS with client certificates when set)")
	flag.StringVar(&key, "key", "", "client listener key")
	flag.StringVar(&ca, "ca", "", "CA that client certificates must be signed by")
	flag.StringVar(&peerCert, "peer-cert", "", "peer certificate (mutual TLS between members when set)")
	flag.StringVar(&peerKey, "peer-key", "", "peer key")
	flag.StringVar(&peerCA, "peer-ca", "", "CA of the peers' certificates")
	flag.Parse()
	if dir == "" {
		return fmt.Errorf("--data-dir is required")
	}

	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir, cfg.LogLevel = name, dir, logLevel
	cfg.InitialClusterToken = "etcdbench"
	cfg.ClusterState = state
	clientScheme, peerScheme := "http://", "http://"
	if cert != "" {
		if key == "" || ca == "" {
			return fmt.Errorf("--cert needs --key and --ca")
		}
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca, ClientCertAuth: true}
		clientScheme = "https://"
	}
	if peerCert != "" {
		if peerKey == "" || peerCA == "" {
			return fmt.Errorf("--peer-cert needs --peer-key and --peer-ca")
		}
		cfg.PeerTLSInfo = transport.TLSInfo{CertFile: peerCert, KeyFile: peerKey, TrustedCAFile: peerCA, ClientCertAuth: true}
		peerScheme = "https://"
	}
	cu, err := mustURL(clientScheme + client)
	if err != nil {
		return err
	}
	pu, err := mustURL(peerScheme + peer)
	if err != nil {
		return err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	if clientHTTP != "" {
		hu, err := mustURL(clientScheme + clientHTTP)
		if err != nil {
			return err
		}
		cfg.ListenClientHttpUrls = []url.URL{hu}
	}
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
