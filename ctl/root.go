package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Main runs tokenctl with args (the command line without the program name)
// and returns the exit code; it never calls os.Exit. ctx bounds the whole
// run: cancelling it (on SIGINT, say) abandons any RPC in flight. Standard
// input is read only by "token verify -"; the environment only for
// TOKENCTL_ENDPOINTS, TOKENCTL_OUTPUT and the credentials (credentials.go).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{
		stdin:     os.Stdin,
		stdout:    stdout,
		stderr:    stderr,
		lookupEnv: os.LookupEnv,
		now:       time.Now,
	}
	return a.run(ctx, args)
}

// app is one invocation of tokenctl: its I/O, its view of the environment
// and the flag values cobra parses into. A new one is made per call, which is
// what keeps Main free of package state.
type app struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
	now       func() time.Time

	global globalFlags
	// ranCommand is set once one of our RunE functions starts; see exitCode.
	ranCommand bool
}

// run executes args and reports any error on stderr.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRootCommand()
	if args == nil {
		// cobra reads os.Args when given nil, which would make an empty
		// in-process call run the test binary's arguments.
		args = []string{}
	}
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(err, a.ranCommand)
	if err != nil && !errors.Is(err, errNo) { // "auth can-i" answered no: exit 1, silently
		fmt.Fprintf(a.stderr, "error: %s\n", errorLine(err))
		if code == ExitUsage {
			if cmd == nil {
				cmd = root
			}
			fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// newRootCommand builds the command tree. Errors are not printed by cobra:
// run prints every error itself so each is exactly one "error: " line.
func (a *app) newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tokenctl",
		Short: "Administer a tokenstore cluster",
		Long: `tokenctl administers a tokenstore cluster over gRPC: creates, inspects,
updates and revokes bearer tokens, verifies a token as the cluster would, and
shows the state of the raft group.

Exit codes: 0 ok; 1 the cluster refused or failed the operation; 2 usage
error; 3 no endpoint reachable. "token verify" exits 0 whether or not the
token is accepted.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          a.missingCommand,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{err: err}
	})
	a.global.register(root.PersistentFlags())
	root.AddCommand(
		a.newTokenCommand(),
		a.newStatusCommand(),
		a.newMemberCommand(),
		a.newLeaderCommand(),
		a.newSnapshotCommand(),
		a.newRBACCommand(),
		a.newOIDCCommand(),
		a.newAuthCommand(),
		a.newVersionCommand(),
	)
	return root
}

// missingCommand is the RunE of commands that only group others. Without
// it cobra would print help and exit 0 for "tokenctl" or "tokenctl token
// frob", which a script would take for success.
func (a *app) missingCommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usageErrorf("missing command for %q (one of: %s)", cmd.CommandPath(), strings.Join(names, ", "))
}

// begin is called first by every RunE that does real work: it marks that
// our code is running (see exitCode) and resolves the global options.
func (a *app) begin(cmd *cobra.Command) (*options, error) {
	a.ranCommand = true
	return a.global.resolve(cmd.Flags(), a.lookupEnv)
}

// exactArgs is cobra.ExactArgs with a usage error that names the missing
// arguments. It never echoes the arguments themselves: for "token verify"
// one of them is a secret.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageErrorf("%s: missing argument %s", cmd.CommandPath(), strings.Join(names[len(args):], " "))
		case len(args) > len(names):
			return usageErrorf("%s: takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s: takes no arguments, got %d", cmd.CommandPath(), len(args))
	}
	return nil
}
