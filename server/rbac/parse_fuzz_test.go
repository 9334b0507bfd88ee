package rbac

import (
	"bytes"
	"testing"
)

// FuzzParse reads any input the way "tokenctl rbac apply -f" does
// (SplitDocuments, then Parse of each document) and checks: no panic; an
// object that parses has a storable key, and its canonical JSON parses
// back to one object with the same key and the same bytes (decode ->
// encode -> decode); its replicated form decodes on the apply path
// (fromStored) to the same bytes, so what the CLI validated is what every
// member stores.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: dev, labels: {a: b}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: dev}
subjects:
- {kind: User, name: alice}
- {kind: Group, name: devs}
- {kind: ServiceAccount, name: ci, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"agg"},"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"x":"y"}},{"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}]}},` +
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"c","labels":{"x":"y"}},"rules":[{"nonResourceURLs":["/healthz"],"verbs":["get"]}]}]}`))
	f.Add([]byte(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"b"},"subjects":[{"kind":"User","name":"u"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"c"}}
{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleList","items":[]}`))
	f.Add([]byte(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"x"},"rules":[],"bogus":1}`))
	f.Add([]byte("kind: List\napiVersion: v1\nitems:\n- kind: List\n  apiVersion: v1\n  items: []\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := SplitDocuments(data)
		if err != nil {
			return
		}
		for _, d := range docs {
			objs, err := Parse(d)
			if err != nil {
				continue
			}
			for _, o := range objs {
				if err := checkKey(o.Key); err != nil {
					t.Fatalf("parsed %s with an unstorable key: %v", o.Key, err)
				}
				again, err := Parse(o.JSON())
				if err != nil || len(again) != 1 {
					t.Fatalf("%s: its canonical JSON does not parse back to one object: %v\n%s", o.Key, err, o.JSON())
				}
				if again[0].Key != o.Key || !bytes.Equal(again[0].JSON(), o.JSON()) {
					t.Fatalf("%s: round trip changed it:\n%s\n%s", o.Key, o.JSON(), again[0].JSON())
				}
				applied, err := fromStored(o.stored())
				if err != nil {
					t.Fatalf("%s: the apply path refuses what Parse accepted: %v", o.Key, err)
				}
				if applied.Key != o.Key || !bytes.Equal(applied.JSON(), o.JSON()) {
					t.Fatalf("%s: the apply path stores other bytes:\n%s\n%s", o.Key, o.JSON(), applied.JSON())
				}
			}
		}
	})
}
