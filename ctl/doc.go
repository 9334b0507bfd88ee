// Package ctl implements tokenctl, the administration CLI for a tokenstore
// cluster. cmd/tokenctl is a thin main around [Main]; everything else lives
// here so the whole CLI can be driven in-process by tests.
//
// # Contract
//
// [Main] builds a fresh command tree on every call, reads nothing but its
// arguments, the TOKENCTL_* environment variables and (for "token verify -")
// standard input, writes results only to stdout and diagnostics only to
// stderr, and returns an exit code instead of exiting. It keeps no package
// state, so concurrent calls are safe.
//
// # Exit codes
//
//	0  ExitOK           the command did what was asked.
//	1  ExitFailed       a member refused or failed the operation (NotFound,
//	                    InvalidArgument, FailedPrecondition, DeadlineExceeded,
//	                    Unavailable on every endpoint, ...), or the command
//	                    was interrupted.
//	2  ExitUsage        the command line was wrong: unknown command or flag,
//	                    missing argument, bad or conflicting values. Nothing
//	                    was sent to any member.
//	3  ExitUnreachable  no endpoint could be connected to (within
//	                    --dial-timeout each, and --timeout in all). Nothing
//	                    was sent to any member, so even a write was
//	                    certainly not applied.
//
// "token verify" exits 0 whether or not the token was accepted: a refused
// token is an answer, not a failure. Scripts read "authenticated" from the
// JSON output.
//
// Every failure is one line on stderr starting with "error: " that names
// what was being done and carries the member's own message; usage errors add
// a hint line pointing at --help.
//
// # Output
//
// "-o table" (default) prints aligned columns or "key: value" lines meant
// for people; its layout may change. "-o json" prints one indented JSON
// object per command, meant for scripts, with stable camelCase field names:
// times are RFC 3339 with nanoseconds in UTC and omitted when unset; raft
// ids (cluster, member, leader) are 16-digit lowercase hex strings; every
// answer from a member carries "revision" (the raft index the answer was
// read at) and "member" (the name of the member that answered).
//
// A bearer token is printed exactly once: in the output of "token create".
// It is never echoed by any other command, error message or debug line.
//
// # Endpoints and failover
//
// Endpoints are tried in the order given. An endpoint whose connection does
// not become READY within --dial-timeout is skipped. Reads (get, list,
// verify, status) also move on when a member answers UNAVAILABLE (a member
// that cannot confirm it is caught up fails closed). Writes (create, update,
// revoke) move on only when the connection never became READY: a write that
// reached a member may have been applied, and sending it twice could, for
// example, create two tokens.
package ctl
