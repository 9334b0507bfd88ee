package rancher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Token is one ClusterAuthToken as an import stores it.
type Token struct {
	// Name is the token's metadata.name: the "<name>" of "<name>:<secret>".
	Name      string
	Namespace string
	UserName  string
	// Groups come from the user's ClusterUserAttribute, when the input had
	// one.
	Groups []string
	// HasUserAttribute says whether the input had the user's
	// ClusterUserAttribute (Rancher refuses tokens of users without one).
	HasUserAttribute bool
	// Hash is the Rancher hash of the secret, from the token or, once
	// Rancher has moved it there, from the Secret of the same name.
	Hash string
	// Enabled is false when the token or its user attribute says so, or
	// does not say (Rancher reads a missing "enabled" as false).
	Enabled bool
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time
}

// object holds the fields of every kind Decode reads; json ignores the
// rest.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`

	// ClusterAuthToken (cluster.cattle.io/v3).
	UserName  string `json:"userName"`
	Hash      string `json:"hash"`
	Enabled   *bool  `json:"enabled"`
	ExpiresAt string `json:"expiresAt"`
	// ClusterUserAttribute (cluster.cattle.io/v3).
	Groups []string `json:"groups"`
	// Secret (v1): data values are base64, which json decodes into bytes.
	Data       map[string][]byte `json:"data"`
	StringData map[string]string `json:"stringData"`
}

func (o *object) ref() string {
	if o.Metadata.Namespace != "" {
		return o.Kind + " " + o.Metadata.Namespace + "/" + o.Metadata.Name
	}
	return o.Kind + " " + o.Metadata.Name
}

// MaxObjects bounds the objects one input may hold.
const MaxObjects = 1_000_000

// Decode reads ClusterAuthToken objects, in YAML or JSON, one or many: a
// single object, a List (as "kubectl get -o yaml" prints), several YAML
// documents separated by "---", or a stream of JSON objects. Besides
// ClusterAuthTokens it reads:
//
//   - ClusterUserAttribute objects: their groups become the groups of the
//     user's tokens, and a disabled attribute disables them (Rancher
//     refuses such tokens);
//   - Secret objects named like a token whose own hash field is empty: their
//     data.hash is the token's hash (newer Rancher moves it there).
//
// Every problem is reported, naming the object, and nothing is returned
// when there is any. A token's hash is checked with ParseHash.
func Decode(r io.Reader) ([]Token, error) {
	var objs []*object
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 64<<10)
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue // an empty YAML document
		}
		var err error
		if objs, err = appendObjects(objs, raw, 0); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(objs) > MaxObjects {
			return nil, fmt.Errorf("more than %d objects", MaxObjects)
		}
	}
	return resolve(objs)
}

func appendObjects(objs []*object, raw json.RawMessage, depth int) ([]*object, error) {
	o := &object{}
	if err := json.Unmarshal(raw, o); err != nil {
		return nil, err
	}
	if o.Kind == "List" || strings.HasSuffix(o.Kind, "List") {
		if depth > 0 {
			return nil, errors.New("a List inside a List")
		}
		for i, item := range o.Items {
			var err error
			if objs, err = appendObjects(objs, item, depth+1); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return objs, nil
	}
	return append(objs, o), nil
}

// resolve joins tokens with their user attributes and hash secrets and
// checks them.
func resolve(objs []*object) ([]Token, error) {
	var errs []error
	users := map[string]*object{}
	secrets := map[string]*object{}
	var tokens []*object
	for _, o := range objs {
		switch o.Kind {
		case "ClusterAuthToken":
			tokens = append(tokens, o)
		case "ClusterUserAttribute":
			if prev, dup := users[o.Metadata.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: given twice (also %s)", o.ref(), prev.ref()))
			}
			users[o.Metadata.Name] = o
		case "Secret":
			secrets[o.Metadata.Namespace+"/"+o.Metadata.Name] = o
		case "":
			errs = append(errs, fmt.Errorf("object %q has no kind", o.Metadata.Name))
		default:
			errs = append(errs, fmt.Errorf("%s: unsupported kind (want ClusterAuthToken, ClusterUserAttribute or Secret)", o.ref()))
		}
	}
	out := make([]Token, 0, len(tokens))
	seen := map[string]string{}
	for _, o := range tokens {
		t, err := token(o, users, secrets)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.ref(), err))
			continue
		}
		if prev, dup := seen[t.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: name given twice (also %s)", o.ref(), prev))
			continue
		}
		seen[t.Name] = o.ref()
		out = append(out, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func token(o *object, users, secrets map[string]*object) (Token, error) {
	t := Token{Name: o.Metadata.Name, Namespace: o.Metadata.Namespace, UserName: o.UserName, Hash: o.Hash}
	if t.Name == "" {
		return Token{}, errors.New("no metadata.name")
	}
	if t.UserName == "" {
		return Token{}, errors.New("no userName")
	}
	if o.Enabled != nil {
		t.Enabled = *o.Enabled
	}
	if o.ExpiresAt != "" {
		exp, err := time.Parse(time.RFC3339, o.ExpiresAt)
		if err != nil {
			return Token{}, fmt.Errorf("expiresAt %q is not an RFC 3339 time", o.ExpiresAt)
		}
		t.ExpiresAt = exp
	}
	if t.Hash == "" {
		s := secrets[t.Namespace+"/"+t.Name]
		if s == nil {
			return Token{}, errors.New("no hash, and no Secret of the same name and namespace holding one")
		}
		if v, ok := s.StringData["hash"]; ok {
			t.Hash = v
		} else {
			t.Hash = string(s.Data["hash"])
		}
		if t.Hash == "" {
			return Token{}, fmt.Errorf("no hash, and %s has no data.hash", s.ref())
		}
	}
	if _, err := ParseHash(t.Hash); err != nil {
		return Token{}, fmt.Errorf("hash: %w", err)
	}
	if u := users[t.UserName]; u != nil {
		t.HasUserAttribute = true
		t.Groups = u.Groups
		if u.Enabled == nil || !*u.Enabled {
			t.Enabled = false
		}
	}
	return t, nil
}
