package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// print writes a command's result to stdout: v as JSON with -o json, else
// the text table() renders. Renderers build the whole text in memory, so a
// failed write is reported once, naming what, and nothing is half-printed
// by a renderer.
func (a *app) print(o *options, what string, v any, table func() string) error {
	var err error
	if o.output == outputJSON {
		err = writeJSON(a.stdout, v)
	} else {
		_, err = io.WriteString(a.stdout, table())
	}
	if err != nil {
		return fmt.Errorf("%s: write output: %w", what, err)
	}
	return nil
}

// writeJSON writes v as one indented JSON document. HTML escaping is off:
// the output is read by people and jq, not embedded in pages, and "<" in a
// description should stay "<".
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table renders rows as aligned columns under header. Cells are cleaned so
// a tab or newline in a description cannot break the alignment.
func table(header []string, rows [][]string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	// Writing to a strings.Builder cannot fail.
	_ = tw.Flush()
	return b.String()
}

// fields renders "key: value" lines with the values aligned, for one object
// (a token, a verification result).
func fields(pairs [][2]string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], cell(p[1]))
	}
	_ = tw.Flush()
	return b.String()
}

// answeredBy is the last line of table output: which member answered and at
// which revision, the same facts JSON carries as "member" and "revision".
func answeredBy(h *tokenstorev1.ResponseHeader) string {
	return fmt.Sprintf("(revision %d, answered by %s)\n", h.GetRevision(), orDash(h.GetMember()))
}

// cell makes s safe for one table cell: control characters (tabs,
// newlines, escape sequences from a hostile description) become spaces, and
// an empty value becomes "-" so columns stay aligned and visibly empty.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jsonTime formats ts as RFC 3339 with nanoseconds in UTC, or "" when unset
// so that an `omitempty` field disappears.
func jsonTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// tableTime formats ts for a table: to the second in UTC (nanoseconds only
// widen the column), or unset when it is not set.
func tableTime(ts *timestamppb.Timestamp, unset string) string {
	if ts == nil {
		return unset
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// hexID formats a raft id (cluster, member) the way every tokenstore tool
// shows it: 16 lowercase hex digits.
func hexID(id uint64) string {
	return fmt.Sprintf("%016x", id)
}

// enumName turns a protobuf enum value name such as "MEMBER_ROLE_LEADER"
// into "leader". A value this build does not know prints as its number,
// which is still better than failing.
func enumName(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}
