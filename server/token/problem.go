package token

import "strings"

// Problem says why a bearer token is malformed. Diagnose is for the refusal
// path only: the hot path calls Parse, and only input Parse refused is
// diagnosed, so telling the caller what is wrong costs nothing when nothing
// is.
type Problem uint8

// The problems, checked in this order: a huge or binary input is named as
// such before its shape is looked at.
const (
	// ProblemNone: the token has the token form.
	ProblemNone Problem = iota
	// ProblemEmpty: no token at all.
	ProblemEmpty
	// ProblemOversize: longer than MaxBearerLen.
	ProblemOversize
	// ProblemNonPrintable: a byte outside printable ASCII (control
	// characters, spaces, line breaks, non-ASCII).
	ProblemNonPrintable
	// ProblemNoSeparator: no ':' between id and secret (a JWT, a password).
	ProblemNoSeparator
	// ProblemPartCount: more than one ':'.
	ProblemPartCount
	// ProblemBadID: the id part is empty, too long or has characters other
	// than lowercase letters, digits, '-' and '.'.
	ProblemBadID
	// ProblemBadSecret: the secret part is not 32 to 128 ASCII letters and
	// digits.
	ProblemBadSecret
)

// Problems lists every problem but ProblemNone, for metrics that want all
// label values up front.
var Problems = []Problem{ProblemEmpty, ProblemOversize, ProblemNonPrintable, ProblemNoSeparator, ProblemPartCount, ProblemBadID, ProblemBadSecret}

// String is a short stable name, usable as a metric label.
func (p Problem) String() string {
	switch p {
	case ProblemNone:
		return "none"
	case ProblemEmpty:
		return "empty"
	case ProblemOversize:
		return "oversize"
	case ProblemNonPrintable:
		return "non_printable"
	case ProblemNoSeparator:
		return "no_separator"
	case ProblemPartCount:
		return "part_count"
	case ProblemBadID:
		return "bad_id"
	case ProblemBadSecret:
		return "bad_secret"
	}
	return "unknown"
}

// Explain says in words what is wrong, for the caller (a webhook's
// status.error). It never repeats any part of the token.
func (p Problem) Explain() string {
	const form = `malformed token: not of the form "<id>:<secret>"`
	switch p {
	case ProblemNone:
		return ""
	case ProblemEmpty:
		return "malformed token: empty"
	case ProblemOversize:
		return "malformed token: longer than 512 bytes"
	case ProblemNonPrintable:
		return "malformed token: contains a character that is not printable ASCII"
	case ProblemNoSeparator:
		return form + ": no ':' separator"
	case ProblemPartCount:
		return form + ": more than one ':'"
	case ProblemBadID:
		return form + ": the id must be 1 to 253 lowercase letters, digits, '-' or '.'"
	case ProblemBadSecret:
		return form + ": the secret must be 32 to 128 ASCII letters and digits"
	}
	return form
}

// Diagnose returns why bearer is malformed, or ProblemNone when Parse
// accepts it.
func Diagnose(bearer string) Problem {
	switch {
	case bearer == "":
		return ProblemEmpty
	case len(bearer) > MaxBearerLen:
		return ProblemOversize
	}
	for i := 0; i < len(bearer); i++ {
		if c := bearer[i]; c <= ' ' || c >= 0x7f {
			return ProblemNonPrintable
		}
	}
	id, secret, ok := strings.Cut(bearer, ":")
	switch {
	case !ok:
		return ProblemNoSeparator
	case strings.Contains(secret, ":"):
		return ProblemPartCount
	case !ValidID(id):
		return ProblemBadID
	}
	if _, _, ok := Parse(bearer); !ok {
		return ProblemBadSecret
	}
	return ProblemNone
}
