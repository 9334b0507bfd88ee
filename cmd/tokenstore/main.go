// Command tokenstore runs one member of a tokenstore cluster. See
// `tokenstore --help` and docs/ for the flags; package server does the work.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tokenstore: error:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var cfg server.Config
	var configFile string
	cmd := &cobra.Command{
		Use:   "tokenstore",
		Short: "Run one member of a replicated token store",
		Long: `tokenstore runs one member of a raft-replicated store of authentication
tokens. Start three (or five) members with the same --initial-cluster:

  tokenstore --name n1 --data-dir data/n1 --listen-client 127.0.0.1:23790 \
    --listen-peer 127.0.0.1:23800 --listen-http 127.0.0.1:23810 \
    --initial-cluster n1=127.0.0.1:23800,n2=127.0.0.1:23801,n3=127.0.0.1:23802 \
    --dev --dev-ca-dir data/ca

Every listener is TLS and members authenticate each other with mutual TLS:
give --tls-cert/--tls-key and --peer-cert/--peer-key/--peer-ca (production),
--dev to generate local certificates, or --insecure on loopback only
(docs/security.md).

Every flag can also be set as the environment variable TOKENSTORE_<FLAG>
(upper case, '-' as '_') or as a key in the YAML file given by --config;
the command line wins over the environment, which wins over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := server.LoadEnvAndFile(cmd.Flags(), configFile); err != nil {
				return err
			}
			log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			return server.Run(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML file of settings keyed by flag name")
	cfg.RegisterFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	cmd.AddCommand(newRestoreCommand())
	return cmd
}

// newRestoreCommand makes the first member of a new cluster from a
// snapshot file written by `tokenctl snapshot save`.
func newRestoreCommand() *cobra.Command {
	var snapshot, dataDir, name, peer string
	cmd := &cobra.Command{
		Use:   "restore --snapshot FILE --data-dir DIR --name NAME --advertise-peer HOST:PORT",
		Short: "Create the first member of a new cluster from a snapshot",
		Long: `restore writes a data directory holding the snapshot's state as a new
one-member cluster (new cluster and member ids). Start tokenstore on it with
the same --name and --data-dir, then add the other members (tokenctl member
add, or --join through gossip).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if snapshot == "" || dataDir == "" || name == "" || peer == "" {
				return fmt.Errorf("--snapshot, --data-dir, --name and --advertise-peer are required")
			}
			res, err := raftstore.Restore(snapshot, dataDir, name, peer)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored revision %d (sha256 %s) into %s as member %s (%016x) of new cluster %016x\n",
				res.Revision, res.SHA256, dataDir, name, res.MemberID, res.ClusterID)
			return nil
		},
	}
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot file from tokenctl snapshot save")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "new, empty data directory")
	cmd.Flags().StringVar(&name, "name", "", "name of the member to create")
	cmd.Flags().StringVar(&peer, "advertise-peer", "", "peer address the member will listen on")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	format = strings.ToLower(format)
	if format == "auto" {
		// A person at a terminal reads text; anything else (a container's
		// log, a file, a collector) is better served by one JSON object per
		// line.
		format = "json"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
}
