package ctl

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// The JSON shapes below are the CLI's script-facing contract: field names
// are fixed, times are RFC 3339 (nanoseconds, UTC) and omitted when unset,
// and collections are always present ([] or {}, never null) so that jq
// filters need no null checks. They are built from protobuf values by pure
// functions, so tests check them without a server.

// userJSON is a UserInfo.
type userJSON struct {
	Username string              `json:"username"`
	UID      string              `json:"uid"`
	Groups   []string            `json:"groups"`
	Extra    map[string][]string `json:"extra"`
}

// tokenJSON is a token's metadata; it never holds the secret.
type tokenJSON struct {
	ID             string            `json:"id"`
	User           userJSON          `json:"user"`
	CreatedAt      string            `json:"createdAt,omitempty"`
	ExpiresAt      string            `json:"expiresAt,omitempty"`
	Disabled       bool              `json:"disabled"`
	Revoked        bool              `json:"revoked"`
	RevokedAt      string            `json:"revokedAt,omitempty"`
	Description    string            `json:"description"`
	Labels         map[string]string `json:"labels"`
	LastUsedAt     string            `json:"lastUsedAt,omitempty"`
	CreateRevision uint64            `json:"createRevision"`
	UpdateRevision uint64            `json:"updateRevision"`
	Audiences      []string          `json:"audiences"`
	HashFormat     string            `json:"hashFormat,omitempty"`
}

// tokenResultJSON is the answer to get, update and revoke.
type tokenResultJSON struct {
	Token    tokenJSON `json:"token"`
	Revision uint64    `json:"revision"`
	Member   string    `json:"member"`
}

// tokenListJSON is the answer to list. Revision and member are those of the
// last page read: pages are separate reads, so a long listing is not one
// snapshot.
type tokenListJSON struct {
	Tokens   []tokenJSON `json:"tokens"`
	Revision uint64      `json:"revision"`
	Member   string      `json:"member"`
}

// createdJSON is the answer to create: the only output that ever carries a
// bearer token.
type createdJSON struct {
	ID        string `json:"id"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt,omitempty"`
	Revision  uint64 `json:"revision"`
	Member    string `json:"member"`
}

// verifyJSON is the answer to verify. Reason is omitted when the token was
// accepted; user only appears when it was.
type verifyJSON struct {
	Authenticated bool      `json:"authenticated"`
	Reason        string    `json:"reason,omitempty"`
	Message       string    `json:"message,omitempty"`
	User          *userJSON `json:"user,omitempty"`
	// Audiences is present when authenticated: those the answer is for.
	Audiences *[]string `json:"audiences,omitempty"`
	TokenID   string    `json:"tokenId,omitempty"`
	Revision  uint64    `json:"revision"`
	Member    string    `json:"member"`
}

func userView(u *tokenstorev1.UserInfo) userJSON {
	v := userJSON{
		Username: u.GetUsername(),
		UID:      u.GetUid(),
		Groups:   append([]string{}, u.GetGroups()...),
		Extra:    map[string][]string{},
	}
	for k, ev := range u.GetExtra() {
		v.Extra[k] = append([]string{}, ev.GetValues()...)
	}
	return v
}

func tokenView(t *tokenstorev1.Token) tokenJSON {
	labels := map[string]string{}
	maps.Copy(labels, t.GetLabels())
	return tokenJSON{
		ID:             t.GetId(),
		User:           userView(t.GetUser()),
		CreatedAt:      jsonTime(t.GetCreatedAt()),
		ExpiresAt:      jsonTime(t.GetExpiresAt()),
		Disabled:       t.GetDisabled(),
		Revoked:        t.GetRevoked(),
		RevokedAt:      jsonTime(t.GetRevokedAt()),
		Description:    t.GetDescription(),
		Labels:         labels,
		LastUsedAt:     jsonTime(t.GetLastUsedAt()),
		CreateRevision: t.GetCreateRevision(),
		UpdateRevision: t.GetUpdateRevision(),
		Audiences:      append([]string{}, t.GetAudiences()...),
		HashFormat:     hashFormat(t.GetHashFormat()),
	}
}

// hashFormat is the short name of a hash format ("native",
// "rancher_scrypt", ...), or "" when the member did not say.
func hashFormat(f tokenstorev1.HashFormat) string {
	if f == tokenstorev1.HashFormat_HASH_FORMAT_UNSPECIFIED {
		return ""
	}
	return enumName(f.String(), "HASH_FORMAT_")
}

func tokenResultView(t *tokenstorev1.Token, h *tokenstorev1.ResponseHeader) tokenResultJSON {
	return tokenResultJSON{Token: tokenView(t), Revision: h.GetRevision(), Member: h.GetMember()}
}

func tokenListView(tokens []*tokenstorev1.Token, h *tokenstorev1.ResponseHeader) tokenListJSON {
	v := tokenListJSON{Tokens: []tokenJSON{}, Revision: h.GetRevision(), Member: h.GetMember()}
	for _, t := range tokens {
		v.Tokens = append(v.Tokens, tokenView(t))
	}
	return v
}

func createdView(resp *tokenstorev1.CreateTokenResponse) createdJSON {
	return createdJSON{
		ID:        resp.GetToken().GetId(),
		Token:     resp.GetBearerToken(),
		ExpiresAt: jsonTime(resp.GetToken().GetExpiresAt()),
		Revision:  resp.GetHeader().GetRevision(),
		Member:    resp.GetHeader().GetMember(),
	}
}

func verifyView(resp *tokenstorev1.AuthenticateResponse) verifyJSON {
	v := verifyJSON{
		Authenticated: resp.GetAuthenticated(),
		TokenID:       resp.GetTokenId(),
		Revision:      resp.GetHeader().GetRevision(),
		Member:        resp.GetHeader().GetMember(),
	}
	if resp.GetAuthenticated() {
		u := userView(resp.GetUser())
		v.User = &u
		auds := append([]string{}, resp.GetAudiences()...)
		v.Audiences = &auds
	} else {
		v.Reason = denyReason(resp.GetReason())
		v.Message = resp.GetMessage()
	}
	return v
}

// denyReason is the short name of a refusal: malformed, unknown, expired,
// disabled, revoked or audience_mismatch.
func denyReason(r tokenstorev1.DenyReason) string {
	return enumName(r.String(), "DENY_REASON_")
}

// tokenState is the one word a person wants first about a token. Revoked
// wins over disabled (revocation is final), and both over expired.
func tokenState(t *tokenstorev1.Token, now time.Time) string {
	switch {
	case t.GetRevoked():
		return "revoked"
	case t.GetDisabled():
		return "disabled"
	case t.GetExpiresAt() != nil && !now.Before(t.GetExpiresAt().AsTime()):
		return "expired"
	default:
		return "active"
	}
}

// tokenListTable renders list output. more says the listing was cut short
// by --limit while the member had further pages.
func tokenListTable(tokens []*tokenstorev1.Token, h *tokenstorev1.ResponseHeader, now time.Time, more bool) string {
	var b strings.Builder
	if len(tokens) == 0 {
		b.WriteString("No tokens.\n")
	} else {
		rows := make([][]string, 0, len(tokens))
		for _, t := range tokens {
			rows = append(rows, []string{
				t.GetId(),
				t.GetUser().GetUsername(),
				strings.Join(t.GetUser().GetGroups(), ","),
				tokenState(t, now),
				tableTime(t.GetExpiresAt(), "never"),
				tableTime(t.GetLastUsedAt(), "never"),
				truncate(t.GetDescription(), 60),
			})
		}
		b.WriteString(table([]string{"ID", "USER", "GROUPS", "STATE", "EXPIRES", "LAST USED", "DESCRIPTION"}, rows))
	}
	if more {
		fmt.Fprintf(&b, "(first %d shown; more exist: raise --limit)\n", len(tokens))
	}
	b.WriteString(answeredBy(h))
	return b.String()
}

// tokenTable renders one token after a one-line title (for example
// "Token tok-1 revoked."), or without one when title is empty.
func tokenTable(title string, t *tokenstorev1.Token, h *tokenstorev1.ResponseHeader, now time.Time) string {
	var b strings.Builder
	if title != "" {
		b.WriteString(title + "\n")
	}
	pairs := [][2]string{
		{"ID", t.GetId()},
		{"User", t.GetUser().GetUsername()},
		{"UID", t.GetUser().GetUid()},
		{"Groups", strings.Join(t.GetUser().GetGroups(), ", ")},
		{"Extra", extraString(t.GetUser().GetExtra())},
		{"State", tokenState(t, now)},
		{"Created", tableTime(t.GetCreatedAt(), "")},
		{"Expires", tableTime(t.GetExpiresAt(), "never")},
		{"Audiences", orAny(t.GetAudiences())},
	}
	if f := hashFormat(t.GetHashFormat()); f != "" {
		pairs = append(pairs, [2]string{"Hash", strings.ReplaceAll(f, "_", " ")})
	}
	if t.GetRevoked() {
		pairs = append(pairs, [2]string{"Revoked", tableTime(t.GetRevokedAt(), "")})
	}
	pairs = append(pairs,
		[2]string{"Last used", tableTime(t.GetLastUsedAt(), "never")},
		[2]string{"Description", t.GetDescription()},
		[2]string{"Labels", labelsString(t.GetLabels())},
		[2]string{"Revisions", fmt.Sprintf("created at %d, updated at %d", t.GetCreateRevision(), t.GetUpdateRevision())},
	)
	b.WriteString(fields(pairs))
	b.WriteString(answeredBy(h))
	return b.String()
}

// createdTable renders create output. The bearer token stands alone on its
// line so it can be copied cleanly, and the warning says it is shown once.
func createdTable(resp *tokenstorev1.CreateTokenResponse) string {
	t := resp.GetToken()
	var b strings.Builder
	fmt.Fprintf(&b, "Created token %s for user %s (expires: %s).\n\n",
		cell(t.GetId()), cell(t.GetUser().GetUsername()), tableTime(t.GetExpiresAt(), "never"))
	fmt.Fprintf(&b, "    %s\n\n", resp.GetBearerToken())
	b.WriteString("Save this token now; it is not shown again.\n")
	b.WriteString(answeredBy(resp.GetHeader()))
	return b.String()
}

// verifyTable renders verify output. It shows the token id, never the
// token.
func verifyTable(resp *tokenstorev1.AuthenticateResponse) string {
	var pairs [][2]string
	if resp.GetAuthenticated() {
		u := resp.GetUser()
		pairs = [][2]string{
			{"Authenticated", "yes"},
			{"User", u.GetUsername()},
			{"UID", u.GetUid()},
			{"Groups", strings.Join(u.GetGroups(), ", ")},
			{"Extra", extraString(u.GetExtra())},
			{"Audiences", orAny(resp.GetAudiences())},
		}
	} else {
		pairs = [][2]string{
			{"Authenticated", "no"},
			{"Reason", denyReason(resp.GetReason())},
		}
		if m := resp.GetMessage(); m != "" {
			pairs = append(pairs, [2]string{"Message", m})
		}
	}
	pairs = append(pairs, [2]string{"Token ID", resp.GetTokenId()})
	return fields(pairs) + answeredBy(resp.GetHeader())
}

// orAny renders audiences, "any" for none: a token bound to no audience is
// valid for every one.
func orAny(auds []string) string {
	if len(auds) == 0 {
		return "any"
	}
	return strings.Join(auds, ", ")
}

// extraString renders UserInfo.extra as "k=v1,v2; k2=v" in key order.
func extraString(extra map[string]*tokenstorev1.ExtraValue) string {
	parts := make([]string, 0, len(extra))
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		parts = append(parts, k+"="+strings.Join(extra[k].GetValues(), ","))
	}
	return strings.Join(parts, "; ")
}

// labelsString renders labels as "k=v, k2=v2" in key order.
func labelsString(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ", ")
}

// truncate shortens s to at most n runes for a table column; the full
// text is in "token get" and the JSON output.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
