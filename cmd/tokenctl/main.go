// Command tokenctl administers a tokenstore cluster. All behaviour lives in
// package ctl; this main only wires the process to it: arguments, standard
// streams, signals and the exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokenstore/tokenstore/ctl"
)

func main() {
	// The first SIGINT/SIGTERM cancels the command (an RPC in flight is
	// abandoned and tokenctl exits 1). stop then restores the default
	// handling, so a second signal kills a process that is stuck anyway.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := ctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
