package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rbac"
)

// maxRBACInput bounds what "rbac apply" reads; a member refuses requests
// over --max-request-bytes anyway, and the whole set of one apply is one
// replicated entry.
const maxRBACInput = 64 << 20

// maxListRecv is the largest list or export answer tokenctl accepts: a
// snapshot of tens of thousands of objects, read in one answer so it is
// one revision.
const maxListRecv = 256 << 20

func (a *app) newRBACCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "Apply, inspect and delete Kubernetes RBAC objects (roles and bindings)",
		Long: `Manage the replicated Kubernetes RBAC objects (Role, ClusterRole,
RoleBinding, ClusterRoleBinding of rbac.authorization.k8s.io/v1) that every
member evaluates for AuthService.Authorize and the SubjectAccessReview
webhook. Every change is one replicated entry and bumps the RBAC revision
that answers carry.`,
		Args: cobra.ArbitraryArgs,
		RunE: a.missingCommand,
	}
	cmd.AddCommand(
		a.newRBACApplyCommand(),
		a.newRBACGetCommand(),
		a.newRBACListCommand(),
		a.newRBACDeleteCommand(),
		a.newRBACExportCommand(),
		a.newRBACBootstrapCommand(),
	)
	return cmd
}

// parseKind maps what may be typed for a kind (as kubectl takes it:
// singular, plural, any case, optionally with the API group) to the kind.
func parseKind(s string) (string, error) {
	l := strings.ToLower(strings.TrimSuffix(s, "."+rbacv1.GroupName))
	for _, k := range rbac.Kinds {
		kl := strings.ToLower(k)
		if l == kl || l == kl+"s" {
			return k, nil
		}
	}
	return "", usageErrorf("unknown kind %q (want role, clusterrole, rolebinding or clusterrolebinding)", s)
}

func clusterScopedKind(kind string) bool {
	return kind == rbac.KindClusterRole || kind == rbac.KindClusterRoleBinding
}

// objectRef checks KIND NAME and the namespace for them.
func objectRef(kindArg, name, namespace string) (*tokenstorev1.RBACObjectRef, error) {
	kind, err := parseKind(kindArg)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) == "" {
		return nil, usageErrorf("NAME is empty")
	}
	if clusterScopedKind(kind) {
		if namespace != "" {
			return nil, usageErrorf("-n/--namespace: a %s has no namespace", kind)
		}
	} else if namespace == "" {
		return nil, usageErrorf("a %s is namespaced: give -n/--namespace", kind)
	}
	return &tokenstorev1.RBACObjectRef{Kind: kind, Namespace: namespace, Name: name}, nil
}

func refName(r *tokenstorev1.RBACObjectRef) string {
	return rbac.Key{Kind: r.GetKind(), Namespace: r.GetNamespace(), Name: r.GetName()}.String()
}

// rbacCall runs one RBACService call with the command's options.
func (a *app) rbacCall(cmd *cobra.Command, o *options, kind rpcKind, what string, fn func(context.Context, tokenstorev1.RBACServiceClient) error) error {
	ctx, cancel := o.commandContext(cmd.Context())
	defer cancel()
	err := o.connector(a.stderr).call(ctx, kind, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, tokenstorev1.NewRBACServiceClient(cc))
	})
	if err != nil {
		return failed(what, err)
	}
	return nil
}

// changeView is the JSON form of one object a write touched.
type changeView struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    string `json:"action"`
}

type changesView struct {
	Changes      []changeView `json:"changes"`
	RBACRevision uint64       `json:"rbacRevision"`
	Revision     uint64       `json:"revision"`
	Member       string       `json:"member"`
}

// printChanges prints what a write did, one "Kind/name action" line per
// object as kubectl apply does.
func (a *app) printChanges(o *options, what string, h *tokenstorev1.ResponseHeader, cs []*tokenstorev1.RBACChange, rev uint64) error {
	v := changesView{Changes: []changeView{}, RBACRevision: rev, Revision: h.GetRevision(), Member: h.GetMember()}
	for _, c := range cs {
		v.Changes = append(v.Changes, changeView{Kind: c.GetRef().GetKind(), Namespace: c.GetRef().GetNamespace(), Name: c.GetRef().GetName(),
			Action: enumName(c.GetAction().String(), "RBAC_ACTION_")})
	}
	return a.print(o, what, v, func() string {
		var b strings.Builder
		for _, c := range cs {
			fmt.Fprintf(&b, "%s %s\n", cell(refName(c.GetRef())), enumName(c.GetAction().String(), "RBAC_ACTION_"))
		}
		fmt.Fprintf(&b, "(RBAC revision %d, revision %d, answered by %s)\n", rev, h.GetRevision(), orDash(h.GetMember()))
		return b.String()
	})
}

// rbacInput is what apply read: one JSON document per object, and where
// each came from for error lines.
type rbacInput struct {
	docs    [][]byte
	sources []string
}

// readRBACInput reads every -f: a file, "-" (standard input), or a
// directory's .yaml, .yml and .json files (with recursive, its
// subdirectories' too), as kubectl apply -f does. Each object is parsed and
// validated here, so a mistake is reported naming its file before anything
// is sent.
func (a *app) readRBACInput(files []string, recursive bool) (*rbacInput, error) {
	in := &rbacInput{}
	var total int64
	read := func(name string, r io.Reader) error {
		b, over, err := readBounded(r, name, maxRBACInput-total)
		if err != nil {
			return err
		}
		if over {
			return fmt.Errorf("input is larger than %d MiB (reading %s)", maxRBACInput>>20, name)
		}
		total += int64(len(b))
		docs, err := rbac.SplitDocuments(b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for i, d := range docs {
			objs, err := rbac.Parse(d)
			if err != nil {
				return fmt.Errorf("%s: document %d: %w", name, i+1, err)
			}
			for _, o := range objs {
				in.docs = append(in.docs, o.JSON())
				in.sources = append(in.sources, name)
			}
		}
		return nil
	}
	for _, f := range files {
		if f == "-" {
			if err := read("standard input", a.stdin); err != nil {
				return nil, err
			}
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if err := readFile(f, read); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(f, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != f && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			switch filepath.Ext(p) {
			case ".yaml", ".yml", ".json":
				return readFile(p, read)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

func readFile(name string, read func(string, io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return read(name, f)
}

func (a *app) newRBACApplyCommand() *cobra.Command {
	var (
		files     []string
		recursive bool
		prune     bool
		expected  uint64
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...] [--prune]",
		Short: "Create or replace RBAC objects from YAML or JSON; --prune makes the set exactly these",
		Long: `Create or replace RBAC objects read as "kubectl apply -f" reads them: files,
directories (their .yaml, .yml and .json files; -R for subdirectories) or
'-' for standard input, each holding one or many objects (YAML documents,
a stream of JSON objects, or a List such as "kubectl get -o yaml" writes).
Objects are validated as a Kubernetes API server validates them before
anything is sent.

Everything given is applied in one replicated entry: all of it or nothing.
With --prune, every stored object not given is deleted in that same entry,
so every member switches from the old set to the new one at one revision
and no answer ever mixes the two. The whole input must fit in one request
(--max-request-bytes of the member, 1 MiB by default).

--expected-revision refuses the change if the RBAC revision has moved
since (for example, since an export that was edited).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErrorf("rbac apply: -f is required (FILE, DIR or - for standard input)")
			}
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			in, err := a.readRBACInput(files, recursive)
			if err != nil {
				return fmt.Errorf("rbac apply: %w", err)
			}
			if len(in.docs) == 0 {
				return fmt.Errorf("rbac apply: no RBAC objects in %s", strings.Join(files, ", "))
			}
			if dryRun {
				return a.printDryRun(o, in)
			}
			req := &tokenstorev1.ApplyRBACRequest{Documents: in.docs, Prune: prune, ExpectedRbacRevision: expected}
			var resp *tokenstorev1.ApplyRBACResponse
			err = a.rbacCall(cmd, o, writeRPC, "apply RBAC objects", func(ctx context.Context, c tokenstorev1.RBACServiceClient) error {
				r, err := c.ApplyRBAC(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printChanges(o, "apply RBAC objects", resp.GetHeader(), resp.GetChanges(), resp.GetRbacRevision())
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (standard input) to read; repeat for more")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read the subdirectories of directories given with -f too")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete every stored RBAC object not given, in the same entry (an atomic replace)")
	cmd.Flags().Uint64Var(&expected, "expected-revision", 0, "refuse unless the RBAC revision is still this one")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "read and validate the input and list the objects; send nothing")
	return cmd
}

// printDryRun lists the objects an apply would send.
func (a *app) printDryRun(o *options, in *rbacInput) error {
	type item struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace,omitempty"`
		Name      string `json:"name"`
		Source    string `json:"source"`
	}
	v := struct {
		Objects []item `json:"objects"`
	}{Objects: []item{}}
	var rows [][]string
	for i, d := range in.docs {
		objs, _ := rbac.Parse(d)
		for _, ob := range objs {
			v.Objects = append(v.Objects, item{Kind: ob.Key.Kind, Namespace: ob.Key.Namespace, Name: ob.Key.Name, Source: in.sources[i]})
			rows = append(rows, []string{ob.Key.Kind, ob.Key.Namespace, ob.Key.Name, in.sources[i]})
		}
	}
	return a.print(o, "rbac apply --dry-run", v, func() string {
		return table([]string{"KIND", "NAMESPACE", "NAME", "SOURCE"}, rows) + fmt.Sprintf("%d object(s) would be applied (dry run: nothing sent)\n", len(rows))
	})
}

func (a *app) newRBACGetCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "get KIND NAME [-n NAMESPACE]",
		Short: "Show one RBAC object (YAML; -o json for JSON)",
		Args:  exactArgs("KIND", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			ref, err := objectRef(args[0], args[1], namespace)
			if err != nil {
				return err
			}
			what := "get " + refName(ref)
			var resp *tokenstorev1.GetRBACResponse
			err = a.rbacCall(cmd, o, readRPC, what, func(ctx context.Context, c tokenstorev1.RBACServiceClient) error {
				r, err := c.GetRBAC(ctx, &tokenstorev1.GetRBACRequest{Ref: ref, Consistency: o.consistency})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			v := map[string]any{"object": json.RawMessage(resp.GetObject().GetJson()), "rbacRevision": resp.GetRbacRevision(),
				"revision": resp.GetHeader().GetRevision(), "member": resp.GetHeader().GetMember()}
			return a.print(o, what, v, func() string {
				y, err := yaml.JSONToYAML(resp.GetObject().GetJson())
				if err != nil {
					y = resp.GetObject().GetJson()
				}
				return string(y) + fmt.Sprintf("# RBAC revision %d, revision %d, answered by %s\n", resp.GetRbacRevision(), resp.GetHeader().GetRevision(), orDash(resp.GetHeader().GetMember()))
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of a Role or RoleBinding")
	return cmd
}

// listKinds parses the KIND arguments of list and export.
func listKinds(args []string) ([]string, error) {
	var kinds []string
	for _, arg := range args {
		for _, s := range strings.Split(arg, ",") {
			k, err := parseKind(s)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	return kinds, nil
}

// listRBAC reads the objects of kinds in namespace in one answer.
func (a *app) listRBAC(cmd *cobra.Command, what string, kinds []string, namespace string) (*options, *tokenstorev1.ListRBACResponse, error) {
	o, err := a.begin(cmd)
	if err != nil {
		return nil, nil, err
	}
	var resp *tokenstorev1.ListRBACResponse
	err = a.rbacCall(cmd, o, readRPC, what, func(ctx context.Context, c tokenstorev1.RBACServiceClient) error {
		r, err := c.ListRBAC(ctx, &tokenstorev1.ListRBACRequest{Kinds: kinds, Namespace: namespace, Consistency: o.consistency},
			grpc.MaxCallRecvMsgSize(maxListRecv))
		resp = r
		return err
	})
	return o, resp, err
}

// objectSummary is the JSON form of one object in a list.
type objectSummary struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Rules     *int     `json:"rules,omitempty"`
	Aggregate bool     `json:"aggregated,omitempty"`
	Role      string   `json:"role,omitempty"`
	Subjects  []string `json:"subjects,omitempty"`
}

func summarize(o *tokenstorev1.RBACObject) objectSummary {
	s := objectSummary{Kind: o.GetRef().GetKind(), Namespace: o.GetRef().GetNamespace(), Name: o.GetRef().GetName()}
	var w struct {
		Rules           []rbacv1.PolicyRule     `json:"rules"`
		AggregationRule *rbacv1.AggregationRule `json:"aggregationRule"`
		Subjects        []rbacv1.Subject        `json:"subjects"`
		RoleRef         rbacv1.RoleRef          `json:"roleRef"`
	}
	_ = json.Unmarshal(o.GetJson(), &w)
	switch s.Kind {
	case rbac.KindRole, rbac.KindClusterRole:
		n := len(w.Rules)
		s.Rules, s.Aggregate = &n, w.AggregationRule != nil
	default:
		s.Role = w.RoleRef.Kind + "/" + w.RoleRef.Name
		for _, sub := range w.Subjects {
			d := sub.Kind + ":" + sub.Name
			if sub.Namespace != "" {
				d = sub.Kind + ":" + sub.Namespace + "/" + sub.Name
			}
			s.Subjects = append(s.Subjects, d)
		}
	}
	return s
}

func (a *app) newRBACListCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "list [KIND[,KIND...]] [-n NAMESPACE]",
		Short: "List RBAC objects: roles with their rule count, bindings with role and subjects",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := listKinds(args)
			if err != nil {
				return err
			}
			o, resp, err := a.listRBAC(cmd, "list RBAC objects", kinds, namespace)
			if err != nil {
				return err
			}
			v := struct {
				Objects      []objectSummary `json:"objects"`
				RBACRevision uint64          `json:"rbacRevision"`
				Revision     uint64          `json:"revision"`
				Member       string          `json:"member"`
			}{Objects: []objectSummary{}, RBACRevision: resp.GetRbacRevision(), Revision: resp.GetHeader().GetRevision(), Member: resp.GetHeader().GetMember()}
			var rows [][]string
			for _, ob := range resp.GetObjects() {
				s := summarize(ob)
				v.Objects = append(v.Objects, s)
				detail := ""
				if s.Rules != nil {
					detail = strconv.Itoa(*s.Rules) + " rule(s)"
					if s.Aggregate {
						detail += " (aggregated)"
					}
				} else {
					detail = s.Role + " -> " + strings.Join(s.Subjects, ", ")
				}
				rows = append(rows, []string{s.Kind, s.Namespace, s.Name, detail})
			}
			return a.print(o, "list RBAC objects", v, func() string {
				return table([]string{"KIND", "NAMESPACE", "NAME", "RULES / ROLE -> SUBJECTS"}, rows) +
					fmt.Sprintf("(RBAC revision %d, revision %d, answered by %s)\n", v.RBACRevision, v.Revision, orDash(v.Member))
			})
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only this namespace's Roles and RoleBindings")
	return cmd
}

func (a *app) newRBACExportCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "export [KIND[,KIND...]] [-n NAMESPACE]",
		Short: "Write RBAC objects as YAML that rbac apply (or kubectl apply) reads back",
		Long: `Write the RBAC objects, all from one snapshot, as a YAML stream (-o json: a
v1 List) that "tokenctl rbac apply -f" and "kubectl apply -f" read back:
roles before bindings. The first line names the RBAC revision; give it to
"rbac apply --expected-revision" to apply an edited export only if nothing
changed meanwhile.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := listKinds(args)
			if err != nil {
				return err
			}
			o, resp, err := a.listRBAC(cmd, "export RBAC objects", kinds, namespace)
			if err != nil {
				return err
			}
			if o.output == outputJSON {
				items := make([]json.RawMessage, 0, len(resp.GetObjects()))
				for _, ob := range resp.GetObjects() {
					items = append(items, ob.GetJson())
				}
				list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items,
					"metadata": map[string]string{"resourceVersion": strconv.FormatUint(resp.GetRbacRevision(), 10)}}
				if err := writeJSON(a.stdout, list); err != nil {
					return fmt.Errorf("export RBAC objects: write output: %w", err)
				}
				return nil
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "# tokenstore RBAC export: RBAC revision %d (revision %d, member %s)\n",
				resp.GetRbacRevision(), resp.GetHeader().GetRevision(), orDash(resp.GetHeader().GetMember()))
			for _, ob := range resp.GetObjects() {
				y, err := yaml.JSONToYAML(ob.GetJson())
				if err != nil {
					return fmt.Errorf("export %s: %w", refName(ob.GetRef()), err)
				}
				b.WriteString("---\n")
				b.Write(y)
			}
			if _, err := a.stdout.Write(b.Bytes()); err != nil {
				return fmt.Errorf("export RBAC objects: write output: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only this namespace's Roles and RoleBindings")
	return cmd
}

func (a *app) newRBACDeleteCommand() *cobra.Command {
	var (
		namespace      string
		ignoreNotFound bool
	)
	cmd := &cobra.Command{
		Use:   "delete KIND NAME [NAME...] [-n NAMESPACE]",
		Short: "Delete RBAC objects, all in one entry",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErrorf("%s: want KIND and at least one NAME", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			var refs []*tokenstorev1.RBACObjectRef
			for _, name := range args[1:] {
				ref, err := objectRef(args[0], name, namespace)
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			}
			what := "delete " + refName(refs[0])
			if len(refs) > 1 {
				what = fmt.Sprintf("delete %d %s objects", len(refs), refs[0].GetKind())
			}
			var resp *tokenstorev1.DeleteRBACResponse
			err = a.rbacCall(cmd, o, writeRPC, what, func(ctx context.Context, c tokenstorev1.RBACServiceClient) error {
				r, err := c.DeleteRBAC(ctx, &tokenstorev1.DeleteRBACRequest{Refs: refs, IgnoreMissing: ignoreNotFound})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printChanges(o, what, resp.GetHeader(), resp.GetChanges(), resp.GetRbacRevision())
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of Roles and RoleBindings")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "delete those that exist instead of refusing when one does not")
	return cmd
}

func (a *app) newRBACBootstrapCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "bootstrap",
		Short: "Install Kubernetes' default ClusterRoles: cluster-admin, admin, edit, view",
		Long: `Install the default user-facing ClusterRoles of Kubernetes' RBAC bootstrap
policy: cluster-admin, and the aggregated admin, edit and view with the
system:aggregate-to-admin, -edit and -view roles they aggregate. Objects of
these names are replaced; nothing else changes. Bind them with your own
RoleBindings and ClusterRoleBindings.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			var resp *tokenstorev1.BootstrapRBACResponse
			err = a.rbacCall(cmd, o, writeRPC, "bootstrap RBAC", func(ctx context.Context, c tokenstorev1.RBACServiceClient) error {
				r, err := c.BootstrapRBAC(ctx, &tokenstorev1.BootstrapRBACRequest{})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printChanges(o, "bootstrap RBAC", resp.GetHeader(), resp.GetChanges(), resp.GetRbacRevision())
		},
	}
}
