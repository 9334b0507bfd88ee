package ctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// errNo is "can-i" answering no: exit 1 (ExitFailed) with nothing on
// stderr, as kubectl auth can-i does, so scripts branch on the exit code
// alone. run does not print it.
var errNo = errors.New("no")

func (a *app) newAuthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Ask authorization questions of the replicated RBAC objects",
		Args:  cobra.ArbitraryArgs,
		RunE:  a.missingCommand,
	}
	cmd.AddCommand(a.newCanICommand())
	return cmd
}

// canIFlags are the flags of "auth can-i".
type canIFlags struct {
	namespace string
	as        string
	asGroups  []string
	list      bool
	quiet     bool
}

// resourceArg splits RESOURCE[.GROUP][/SUBRESOURCE]: "pods",
// "deployments.apps/scale". A resource name has no dots; the first dot
// starts the API group, as kubectl writes "resource.group".
func resourceArg(s string) (resource, group, sub string, err error) {
	rg, sub, _ := strings.Cut(s, "/")
	resource, group, _ = strings.Cut(rg, ".")
	if resource == "" || strings.Contains(sub, "/") || strings.HasSuffix(s, "/") {
		return "", "", "", usageErrorf("auth can-i: RESOURCE %q: want RESOURCE[.GROUP][/SUBRESOURCE], e.g. pods, deployments.apps, pods/log", s)
	}
	return resource, group, sub, nil
}

// request builds the question from the arguments: VERB and a resource
// with an optional NAME, or VERB and a non-resource URL ("/healthz").
func (f *canIFlags) request(args []string) (*tokenstorev1.AuthorizeRequest, error) {
	if f.as == "" && len(f.asGroups) == 0 {
		return nil, usageErrorf("auth can-i: --as USER (or --as-group GROUP) is required: tokenstore has no current user to ask about")
	}
	req := &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: f.as, Groups: f.asGroups}}
	verb := args[0]
	if strings.TrimSpace(verb) == "" {
		return nil, usageErrorf("auth can-i: VERB is empty")
	}
	if strings.HasPrefix(args[1], "/") {
		if len(args) > 2 {
			return nil, usageErrorf("auth can-i: a non-resource URL takes no NAME")
		}
		if f.namespace != "" {
			return nil, usageErrorf("auth can-i: a non-resource URL has no namespace")
		}
		req.NonResourceAttributes = &tokenstorev1.NonResourceAttributes{Verb: verb, Path: args[1]}
		return req, nil
	}
	resource, group, sub, err := resourceArg(args[1])
	if err != nil {
		return nil, err
	}
	ra := &tokenstorev1.ResourceAttributes{Namespace: f.namespace, Verb: verb, Group: group, Resource: resource, Subresource: sub}
	if len(args) == 3 {
		ra.Name = args[2]
	}
	req.ResourceAttributes = ra
	return req, nil
}

func (a *app) newCanICommand() *cobra.Command {
	var f canIFlags
	cmd := &cobra.Command{
		Use:   "can-i VERB RESOURCE[.GROUP][/SUBRESOURCE] [NAME] | VERB /URL  --as USER [--as-group GROUP] [-n NAMESPACE]\n  tokenctl auth can-i --list --as USER [-n NAMESPACE]",
		Short: "Ask whether a user may do something, as kubectl auth can-i does",
		Long: `Ask a member whether USER may do VERB on a resource (or a non-resource URL
such as /healthz), as Kubernetes' RBAC authorizer would answer from the
replicated RBAC objects. The groups Kubernetes adds are added here too:
system:authenticated, and for a service account ("system:serviceaccount:NS:NAME")
given without --as-group, system:serviceaccounts and system:serviceaccounts:NS.

Without -n the question is cluster-wide (all namespaces, as kubectl's -A),
so only ClusterRoleBindings count; with -n, that namespace's RoleBindings
count too.

Prints "yes" and exits 0, or prints "no" and exits 1, like kubectl auth
can-i (-q prints nothing). The answer names the binding and role that
allowed it and the RBAC revision it was computed at.

--list prints every rule that applies to USER (in NAMESPACE with -n) and
exits 0.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.list {
				if len(args) > 0 {
					return usageErrorf("auth can-i --list takes no arguments")
				}
				return nil
			}
			if len(args) < 2 || len(args) > 3 {
				return usageErrorf("auth can-i: want VERB RESOURCE [NAME] or VERB /URL, got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			if f.list {
				return a.listRules(cmd, o, &f)
			}
			req, err := f.request(args)
			if err != nil {
				return err
			}
			req.Consistency = o.consistency
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			var resp *tokenstorev1.AuthorizeResponse
			err = o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewAuthServiceClient(cc).Authorize(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return failed("auth can-i", err)
			}
			if !f.quiet {
				if err := a.print(o, "auth can-i", canIView(resp), func() string { return canITable(resp) }); err != nil {
					return err
				}
			}
			if !resp.GetAllowed() {
				return errNo
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the request (default: cluster-wide / all namespaces)")
	fs.StringVar(&f.as, "as", "", "username to ask about")
	fs.StringArrayVar(&f.asGroups, "as-group", nil, "group to ask about (repeat for more)")
	fs.BoolVar(&f.list, "list", false, "list every rule that applies to the user")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing; the exit code is the answer")
	return cmd
}

// canIAnswer is the JSON form of a can-i answer.
type canIAnswer struct {
	Allowed         bool     `json:"allowed"`
	Reason          string   `json:"reason,omitempty"`
	EvaluationError string   `json:"evaluationError,omitempty"`
	Binding         string   `json:"binding,omitempty"`
	Role            string   `json:"role,omitempty"`
	Subject         string   `json:"subject,omitempty"`
	Groups          []string `json:"groups"`
	RBACRevision    uint64   `json:"rbacRevision"`
	Revision        uint64   `json:"revision"`
	Member          string   `json:"member"`
}

func canIView(r *tokenstorev1.AuthorizeResponse) canIAnswer {
	v := canIAnswer{Allowed: r.GetAllowed(), Reason: r.GetReason(), EvaluationError: r.GetEvaluationError(), Groups: r.GetGroups(),
		RBACRevision: r.GetRbacRevision(), Revision: r.GetHeader().GetRevision(), Member: r.GetHeader().GetMember()}
	if v.Groups == nil {
		v.Groups = []string{}
	}
	if r.GetAllowed() {
		v.Binding, v.Role = refName(r.GetBinding()), refName(r.GetRole())
		s := r.GetSubject()
		v.Subject = s.GetKind() + ":" + s.GetName()
		if s.GetNamespace() != "" {
			v.Subject = s.GetKind() + ":" + s.GetNamespace() + "/" + s.GetName()
		}
	}
	return v
}

// canITable is kubectl's answer line ("yes", or "no" with the reason)
// followed by what allowed it and the revisions.
func canITable(r *tokenstorev1.AuthorizeResponse) string {
	var b strings.Builder
	if r.GetAllowed() {
		fmt.Fprintf(&b, "yes\n%s\n", oneLine(r.GetReason()))
	} else {
		b.WriteString("no")
		if r.GetReason() != "" {
			b.WriteString(" - " + oneLine(r.GetReason()))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "(RBAC revision %d, revision %d, answered by %s)\n", r.GetRbacRevision(), r.GetHeader().GetRevision(), orDash(r.GetHeader().GetMember()))
	return b.String()
}

// listRules prints every rule that applies to the user, merged the way
// kubectl auth can-i --list shows them: one row per resource (with its
// group) and resource names, or per non-resource URL, with the union of
// their verbs.
func (a *app) listRules(cmd *cobra.Command, o *options, f *canIFlags) error {
	if f.as == "" && len(f.asGroups) == 0 {
		return usageErrorf("auth can-i --list: --as USER (or --as-group GROUP) is required")
	}
	req := &tokenstorev1.ListRulesRequest{User: &tokenstorev1.UserInfo{Username: f.as, Groups: f.asGroups}, Namespace: f.namespace, Consistency: o.consistency}
	ctx, cancel := o.commandContext(cmd.Context())
	defer cancel()
	var resp *tokenstorev1.ListRulesResponse
	err := o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		r, err := tokenstorev1.NewRBACServiceClient(cc).ListRules(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return failed("auth can-i --list", err)
	}
	rows := mergeRules(resp.GetRules())
	type ruleView struct {
		Resource       string   `json:"resource,omitempty"`
		NonResourceURL string   `json:"nonResourceURL,omitempty"`
		ResourceNames  []string `json:"resourceNames,omitempty"`
		Verbs          []string `json:"verbs"`
	}
	v := struct {
		Rules           []ruleView `json:"rules"`
		Incomplete      bool       `json:"incomplete,omitempty"`
		EvaluationError string     `json:"evaluationError,omitempty"`
		Groups          []string   `json:"groups"`
		RBACRevision    uint64     `json:"rbacRevision"`
		Revision        uint64     `json:"revision"`
		Member          string     `json:"member"`
	}{Rules: []ruleView{}, Incomplete: resp.GetIncomplete(), EvaluationError: resp.GetEvaluationError(), Groups: resp.GetGroups(),
		RBACRevision: resp.GetRbacRevision(), Revision: resp.GetHeader().GetRevision(), Member: resp.GetHeader().GetMember()}
	var cells [][]string
	for _, r := range rows {
		v.Rules = append(v.Rules, ruleView{Resource: r.resource, NonResourceURL: r.url, ResourceNames: r.names, Verbs: r.verbs})
		cells = append(cells, []string{r.resource, bracket(r.url), "[" + strings.Join(r.names, " ") + "]", "[" + strings.Join(r.verbs, " ") + "]"})
	}
	return a.print(o, "auth can-i --list", v, func() string {
		out := tableKeepEmpty([]string{"Resources", "Non-Resource URLs", "Resource Names", "Verbs"}, cells)
		if v.Incomplete {
			out += "incomplete: " + oneLine(v.EvaluationError) + "\n"
		}
		return out + fmt.Sprintf("(RBAC revision %d, revision %d, answered by %s)\n", v.RBACRevision, v.Revision, orDash(v.Member))
	})
}

func bracket(url string) string {
	if url == "" {
		return "[]"
	}
	return "[" + url + "]"
}

// tableKeepEmpty is table without the "-" in empty cells: kubectl leaves
// the Resources cell of a non-resource row blank.
func tableKeepEmpty(header []string, rows [][]string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c != "" {
				c = cell(c)
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
	return b.String()
}

// ruleRow is one line of can-i --list.
type ruleRow struct {
	resource string // "pods", "deployments.apps", "*.*"
	url      string
	names    []string
	verbs    []string
}

// mergeRules breaks rules down into one row per resource.group and
// resource names (or per URL) and unions the verbs of equal rows, as
// kubectl auth can-i --list prints them; rows are sorted by resource.
func mergeRules(rules []*tokenstorev1.SourcedRule) []ruleRow {
	byKey := map[string]*ruleRow{}
	var keys []string
	add := func(key string, row ruleRow, verbs []string) {
		r := byKey[key]
		if r == nil {
			r = &row
			byKey[key] = r
			keys = append(keys, key)
		}
		for _, v := range verbs {
			if !slices.Contains(r.verbs, v) {
				r.verbs = append(r.verbs, v)
			}
		}
	}
	for _, sr := range rules {
		r := sr.GetRule()
		for _, g := range r.GetApiGroups() {
			for _, res := range r.GetResources() {
				name := res
				if g != "" {
					name = res + "." + g
				}
				names := slices.Clone(r.GetResourceNames())
				sort.Strings(names)
				add("r\x00"+name+"\x00"+strings.Join(names, "\x00"), ruleRow{resource: name, names: names}, r.GetVerbs())
			}
		}
		for _, u := range r.GetNonResourceUrls() {
			add("u\x00"+u, ruleRow{url: u}, r.GetVerbs())
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := byKey[keys[i]], byKey[keys[j]]
		if (a.url == "") != (b.url == "") {
			return a.url == ""
		}
		if a.resource != b.resource {
			return a.resource < b.resource
		}
		if a.url != b.url {
			return a.url < b.url
		}
		return strings.Join(a.names, " ") < strings.Join(b.names, " ")
	})
	out := make([]ruleRow, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}
