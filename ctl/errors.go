package ctl

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
)

// Exit codes returned by [Main]. They are part of the CLI's contract (see
// the package doc): scripts branch on them.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitFailed: a member refused or failed the operation, or the command
	// was interrupted.
	ExitFailed = 1
	// ExitUsage: the command line was wrong; nothing was sent.
	ExitUsage = 2
	// ExitUnreachable: no endpoint could be connected to; nothing was sent.
	ExitUnreachable = 3
)

// usageError is a mistake on the command line. It is reported with a hint
// to the command's --help and exits with ExitUsage.
type usageError struct {
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf makes a usageError from a format.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// unreachableError means no endpoint's connection became READY, so no
// request was sent. It is printed as is (the operation is not named: the
// line is the same for every command, which lets scripts and people
// recognise it) and exits with ExitUnreachable.
type unreachableError struct {
	tried []string
	last  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("no endpoint reachable (tried %s): %v", strings.Join(e.tried, ", "), e.last)
}

func (e *unreachableError) Unwrap() error { return e.last }

// unavailableError means at least one member was connected to but every
// member that answered said UNAVAILABLE (for example, none could confirm it
// was caught up with the leader). The operation reached the cluster, so it
// is a failure of the operation (ExitFailed), not of connectivity.
type unavailableError struct {
	tried []string
	last  error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("unavailable on every endpoint (tried %s): %v", strings.Join(e.tried, ", "), e.last)
}

func (e *unavailableError) Unwrap() error { return e.last }

// rpcError is a gRPC status reduced to what a person needs: the member's
// message (or a readable form of the code when the message is empty). The
// code is kept for callers that branch on it.
type rpcError struct {
	code codes.Code
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

// failed names the operation err happened in, as every error line must.
// A member's message that already starts with the same operation (the
// server wraps its own errors as "update token X: ...") is not prefixed a
// second time.
func failed(what string, err error) error {
	if strings.HasPrefix(err.Error(), what+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// errInterrupted is returned when the command's context was cancelled from
// outside (SIGINT/SIGTERM in cmd/tokenctl).
var errInterrupted = errors.New("interrupted")

// exitCode maps an error returned by the command tree to an exit code.
// ranCommand says whether one of our own RunE functions started: an error
// we did not classify that comes from cobra before that (unknown command,
// bad flag, wrong argument count) is a usage error; one that comes from our
// code afterwards (writing output failed, ...) is a failure.
func exitCode(err error, ranCommand bool) int {
	var (
		usage       *usageError
		unreachable *unreachableError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &unreachable):
		return ExitUnreachable
	case !ranCommand:
		return ExitUsage
	default:
		return ExitFailed
	}
}

// errorLine is the one line printed to stderr for err, without the
// "error: " prefix. An unreachableError is printed on its own, dropping the
// operation that wrapped it, so the line is the same for every command.
func errorLine(err error) string {
	var unreachable *unreachableError
	if errors.As(err, &unreachable) {
		return unreachable.Error()
	}
	return oneLine(err.Error())
}

// oneLine folds a possibly multi-line message onto one line so every error
// is exactly one line on stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// humanCode turns a gRPC code name such as "FailedPrecondition" into
// "failed precondition", for statuses that arrive without a message.
func humanCode(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
