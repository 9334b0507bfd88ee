package rbac

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 4

// Parse reads one document, JSON or YAML, holding a Role, ClusterRole,
// RoleBinding or ClusterRoleBinding of rbac.authorization.k8s.io/v1 or a
// List of them (kind List of apiVersion v1, as "kubectl get -o yaml"
// writes, or RoleList and the like). It refuses what the Kubernetes API
// server would refuse (unknown fields, invalid names, rules and subjects),
// applies its defaults, and returns the objects in document order. Errors
// name the object: "items[2] (RoleBinding/dev/x): ...".
func Parse(doc []byte) ([]*Object, error) {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %w", err)
	}
	var out []*Object
	if err := parseInto(&out, data, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

func parseInto(out *[]*Object, data []byte, where string, depth int) error {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if string(data) == "null" {
		return nil // an empty YAML document
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("%snot a Kubernetes object: %w", where, err)
	}
	if isList(head.APIVersion, head.Kind) {
		if depth >= maxListDepth {
			return fmt.Errorf("%sLists nested deeper than %d", where, maxListDepth)
		}
		for i, item := range head.Items {
			if err := parseInto(out, item, fmt.Sprintf("%sitems[%d]: ", where, i), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	o, err := decode(data, true)
	if err != nil {
		return fmt.Errorf("%s%w", where, err)
	}
	o.setDefaults()
	if errs := validate(o); len(errs) > 0 {
		return fmt.Errorf("%s%s %q is invalid: %s", where, o.Key.Kind, o.Key.Name, errs.ToAggregate())
	}
	if err := o.finish(); err != nil {
		return fmt.Errorf("%s%w", where, err)
	}
	*out = append(*out, o)
	return nil
}

// isList says whether a document is a list of objects: a v1 List, or a
// RoleList, ClusterRoleList ... of rbac/v1.
func isList(apiVersion, kind string) bool {
	if apiVersion == "v1" && kind == "List" {
		return true
	}
	return apiVersion == APIVersion && strings.HasSuffix(kind, "List") && kindRank(strings.TrimSuffix(kind, "List")) < len(Kinds)
}

// SplitDocuments splits what "kubectl apply -f" reads from one file into
// documents: a YAML stream ("---" separated) or a stream of JSON objects.
// Each document is left as written; Parse reads it.
func SplitDocuments(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var docs [][]byte
	if bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			if err != nil {
				return nil, fmt.Errorf("JSON object %d: %w", len(docs)+1, err)
			}
			docs = append(docs, raw)
		}
	}
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", len(docs)+1, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}
