package rbac

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// The four kinds this package stores.
const (
	KindRole               = "Role"
	KindClusterRole        = "ClusterRole"
	KindRoleBinding        = "RoleBinding"
	KindClusterRoleBinding = "ClusterRoleBinding"
)

// Kinds lists the kinds in the order lists and exports use: roles before
// the bindings that refer to them, so an export applies cleanly anywhere.
var Kinds = []string{KindClusterRole, KindRole, KindClusterRoleBinding, KindRoleBinding}

// APIVersion is the only Kubernetes API version objects are read and
// written in.
const APIVersion = rbacv1.GroupName + "/v1"

// encodingJSON is raftstorev1.RBACObject.encoding 1: the object's
// Kubernetes JSON.
const encodingJSON = 1

// Key names one object.
type Key struct {
	Kind      string
	Namespace string // empty for cluster-scoped kinds
	Name      string
}

// String is "Kind/name" or "Kind/namespace/name".
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// storageKey is the key in the objects bucket: "<kind>/<namespace>/<name>"
// (names and namespaces cannot hold '/').
func (k Key) storageKey() []byte {
	return []byte(k.Kind + "/" + k.Namespace + "/" + k.Name)
}

// kindRank orders kinds as Kinds lists them.
func kindRank(kind string) int {
	for i, k := range Kinds {
		if k == kind {
			return i
		}
	}
	return len(Kinds)
}

// less orders keys by kind (Kinds order), namespace, name.
func (k Key) less(o Key) bool {
	if a, b := kindRank(k.Kind), kindRank(o.Kind); a != b {
		return a < b
	}
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// compareKeys orders keys as less does, for slices.SortFunc.
func compareKeys(a, b Key) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// clusterScoped says whether kind has no namespace.
func clusterScoped(kind string) bool {
	return kind == KindClusterRole || kind == KindClusterRoleBinding
}

// Object is one RBAC object. It is immutable once made and shared by every
// snapshot that holds it, so nothing may modify its fields or the slices
// and maps they hold.
type Object struct {
	Key         Key
	Labels      map[string]string
	Annotations map[string]string
	// Rules are a role's rules; for an aggregated ClusterRole, the
	// aggregated rules.
	Rules []rbacv1.PolicyRule
	// Aggregation is a ClusterRole's aggregationRule, or nil.
	Aggregation *rbacv1.AggregationRule
	// Subjects and RoleRef are a binding's.
	Subjects []rbacv1.Subject
	RoleRef  rbacv1.RoleRef

	// data is the canonical JSON (see encode), as stored.
	data []byte
	// selectors are an aggregated ClusterRole's selectors; an invalid
	// one (refused by validation, so never from this binary) is nil and
	// selects nothing.
	selectors []labels.Selector
}

// JSON returns the object in its canonical Kubernetes JSON form. The bytes
// are shared: do not modify them.
func (o *Object) JSON() []byte { return o.data }

// IsRole says whether o is a Role or ClusterRole.
func (o *Object) IsRole() bool { return o.Key.Kind == KindRole || o.Key.Kind == KindClusterRole }

// typed returns the object as its k8s.io/api type, with the metadata this
// store keeps: name, namespace, labels and annotations. Everything else
// (uid, resourceVersion, timestamps, managedFields) belongs to the
// Kubernetes API server that made it and means nothing here.
func (o *Object) typed() any {
	meta := metav1.ObjectMeta{Name: o.Key.Name, Namespace: o.Key.Namespace, Labels: o.Labels, Annotations: o.Annotations}
	tm := metav1.TypeMeta{APIVersion: APIVersion, Kind: o.Key.Kind}
	switch o.Key.Kind {
	case KindRole:
		return &rbacv1.Role{TypeMeta: tm, ObjectMeta: meta, Rules: o.Rules}
	case KindClusterRole:
		return &rbacv1.ClusterRole{TypeMeta: tm, ObjectMeta: meta, Rules: o.Rules, AggregationRule: o.Aggregation}
	case KindRoleBinding:
		return &rbacv1.RoleBinding{TypeMeta: tm, ObjectMeta: meta, Subjects: o.Subjects, RoleRef: o.RoleRef}
	default:
		return &rbacv1.ClusterRoleBinding{TypeMeta: tm, ObjectMeta: meta, Subjects: o.Subjects, RoleRef: o.RoleRef}
	}
}

// finish encodes o canonically and parses its selectors. The
// encoding is encoding/json of the k8s.io/api type: deterministic (struct
// field order, sorted map keys), so every member stores the same bytes.
func (o *Object) finish() error {
	data, err := json.Marshal(o.typed())
	if err != nil {
		return fmt.Errorf("encode %s: %w", o.Key, err)
	}
	o.data = data
	if o.Aggregation != nil {
		o.selectors = make([]labels.Selector, len(o.Aggregation.ClusterRoleSelectors))
		for i := range o.Aggregation.ClusterRoleSelectors {
			if sel, err := metav1.LabelSelectorAsSelector(&o.Aggregation.ClusterRoleSelectors[i]); err == nil {
				o.selectors[i] = sel
			}
		}
	}
	return nil
}

// withRules returns a copy of the ClusterRole o with other rules.
func (o *Object) withRules(rules []rbacv1.PolicyRule) (*Object, error) {
	c := *o
	c.Rules = rules
	if err := c.finish(); err != nil {
		return nil, err
	}
	return &c, nil
}

// wireObject is what every RBAC kind may hold, for decoding before the
// kind is known to be one of them.
type wireObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Rules             []rbacv1.PolicyRule     `json:"rules"`
	AggregationRule   *rbacv1.AggregationRule `json:"aggregationRule,omitempty"`
	Subjects          []rbacv1.Subject        `json:"subjects,omitempty"`
	RoleRef           rbacv1.RoleRef          `json:"roleRef"`
}

// decode makes an Object from one object's JSON. strict refuses unknown
// fields and a kind's foreign fields (rules on a binding), as the
// Kubernetes API server's strict field validation does; the apply path
// decodes leniently because the proposer already checked.
func decode(data []byte, strict bool) (*Object, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion != APIVersion {
		return nil, fmt.Errorf("apiVersion %q: want %s", tm.APIVersion, APIVersion)
	}
	var typed any
	switch tm.Kind {
	case KindRole:
		typed = &rbacv1.Role{}
	case KindClusterRole:
		typed = &rbacv1.ClusterRole{}
	case KindRoleBinding:
		typed = &rbacv1.RoleBinding{}
	case KindClusterRoleBinding:
		typed = &rbacv1.ClusterRoleBinding{}
	default:
		return nil, fmt.Errorf("kind %q: want one of %s", tm.Kind, strings.Join(Kinds, ", "))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
		if err := dec.Decode(typed); err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
	}
	// Every kind decodes into the union shape, so one code path fills
	// the Object.
	var w wireObject
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	o := &Object{
		Key:         Key{Kind: tm.Kind, Namespace: w.Namespace, Name: w.Name},
		Labels:      emptyToNil(w.Labels),
		Annotations: emptyToNil(w.Annotations),
	}
	switch tm.Kind {
	case KindRole, KindClusterRole:
		o.Rules = w.Rules
		if tm.Kind == KindClusterRole {
			o.Aggregation = w.AggregationRule
		}
	default:
		o.Subjects, o.RoleRef = w.Subjects, w.RoleRef
	}
	return o, nil
}

func emptyToNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// setDefaults fills in what the Kubernetes API server defaults in
// rbac/v1: the API group of User and Group subjects and of role
// references.
func (o *Object) setDefaults() {
	if o.IsRole() {
		return
	}
	if o.RoleRef.APIGroup == "" {
		o.RoleRef.APIGroup = rbacv1.GroupName
	}
	if len(o.Subjects) == 0 {
		return
	}
	subs := make([]rbacv1.Subject, len(o.Subjects))
	copy(subs, o.Subjects)
	for i := range subs {
		if subs[i].APIGroup == "" && (subs[i].Kind == rbacv1.UserKind || subs[i].Kind == rbacv1.GroupKind) {
			subs[i].APIGroup = rbacv1.GroupName
		}
	}
	o.Subjects = subs
}

// stored is o as carried in a command and kept in the state database.
func (o *Object) stored() *raftstorev1.RBACObject {
	return &raftstorev1.RBACObject{Encoding: encodingJSON, Data: o.data}
}

// Stored converts objects to their replicated form, for an ApplyRBAC
// command.
func Stored(objs []*Object) []*raftstorev1.RBACObject {
	out := make([]*raftstorev1.RBACObject, len(objs))
	for i, o := range objs {
		out[i] = o.stored()
	}
	return out
}

// fromStored decodes an object carried in a command or read from the
// state database, leniently: the proposer validated it. What Apply needs
// to stay consistent (a known kind, a name, a namespace exactly when the
// kind has one) is checked here, the same on every member.
func fromStored(s *raftstorev1.RBACObject) (*Object, error) {
	if s.GetEncoding() != encodingJSON {
		return nil, fmt.Errorf("RBAC object encoding %d is not known to this binary; upgrade tokenstore", s.GetEncoding())
	}
	o, err := decode(s.GetData(), false)
	if err != nil {
		return nil, err
	}
	if err := checkKey(o.Key); err != nil {
		return nil, err
	}
	if err := o.finish(); err != nil {
		return nil, err
	}
	return o, nil
}

// checkKey refuses a key that cannot be stored: no name, a '/' in a part,
// or a namespace on a cluster-scoped kind (or none on a namespaced one).
func checkKey(k Key) error {
	if kindRank(k.Kind) == len(Kinds) {
		return fmt.Errorf("kind %q: want one of %s", k.Kind, strings.Join(Kinds, ", "))
	}
	if k.Name == "" || strings.Contains(k.Name, "/") || strings.Contains(k.Namespace, "/") {
		return fmt.Errorf("%s: name must be set and names and namespaces cannot contain '/'", k)
	}
	if clusterScoped(k.Kind) != (k.Namespace == "") {
		if clusterScoped(k.Kind) {
			return fmt.Errorf("%s: a %s has no namespace", k, k.Kind)
		}
		return fmt.Errorf("%s: a %s needs a namespace", k, k.Kind)
	}
	return nil
}
