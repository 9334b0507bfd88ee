package rancher

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeYAMLDocumentsWithUsersAndSecrets(t *testing.T) {
	in := `
apiVersion: cluster.cattle.io/v3
kind: ClusterAuthToken
metadata:
  name: kubeconfig-u-abc
  namespace: cattle-system
userName: u-abc
hash: "` + vectorSHA3 + `"
enabled: true
expiresAt: "2031-02-03T04:05:06Z"
---
apiVersion: cluster.cattle.io/v3
kind: ClusterAuthToken
metadata: {name: token-moved, namespace: cattle-system}
userName: u-abc
hash: ""
enabled: true
---
apiVersion: v1
kind: Secret
metadata: {name: token-moved, namespace: cattle-system}
data:
  hash: ` + base64.StdEncoding.EncodeToString([]byte(vectorSHA256)) + `
---
apiVersion: cluster.cattle.io/v3
kind: ClusterUserAttribute
metadata: {name: u-abc, namespace: cattle-system}
groups: ["github_org://1", "system:authenticated"]
enabled: true
---
apiVersion: cluster.cattle.io/v3
kind: ClusterAuthToken
metadata: {name: token-nouser, namespace: cattle-system}
userName: u-zzz
hash: "` + vectorScrypt + `"
---
`
	toks, err := Decode(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 {
		t.Fatalf("decoded %d tokens, want 3", len(toks))
	}
	a, moved, nouser := toks[0], toks[1], toks[2] // name order
	if a.Name != "kubeconfig-u-abc" || a.Namespace != "cattle-system" || a.UserName != "u-abc" || a.Hash != vectorSHA3 ||
		!a.Enabled || !a.ExpiresAt.Equal(time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)) ||
		!slices.Equal(a.Groups, []string{"github_org://1", "system:authenticated"}) || !a.HasUserAttribute {
		t.Errorf("token a = %+v", a)
	}
	if moved.Name != "token-moved" || moved.Hash != vectorSHA256 {
		t.Errorf("hash not taken from the Secret: %+v", moved)
	}
	// No "enabled": Rancher reads false. No user attribute: no groups.
	if nouser.Enabled || nouser.HasUserAttribute || nouser.Groups != nil || !nouser.ExpiresAt.IsZero() {
		t.Errorf("token without enabled and user attribute = %+v", nouser)
	}
}

func TestDecodeListAndJSONStream(t *testing.T) {
	list := `{"apiVersion":"v1","kind":"List","items":[
	  {"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t1"},"userName":"u1","hash":"` + vectorSHA256 + `","enabled":true},
	  {"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"u1"},"groups":["g"],"enabled":false}]}
	{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t2"},"userName":"u2","hash":"` + vectorSHA3 + `","enabled":true}`
	toks, err := Decode(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 || toks[0].Name != "t1" || toks[1].Name != "t2" {
		t.Fatalf("decoded %+v", toks)
	}
	// A disabled user attribute disables the user's tokens.
	if toks[0].Enabled || !slices.Equal(toks[0].Groups, []string{"g"}) {
		t.Errorf("t1 = %+v, want disabled with group g", toks[0])
	}
	if !toks[1].Enabled {
		t.Errorf("t2 = %+v, want enabled", toks[1])
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	in := `kind: ClusterAuthToken
metadata: {name: a}
userName: u
hash: "$9:x:y"
---
kind: ClusterAuthToken
metadata: {name: b}
hash: "` + vectorSHA256 + `"
---
kind: ClusterAuthToken
metadata: {name: c}
userName: u
---
kind: ClusterAuthToken
metadata: {name: d}
userName: u
hash: "` + vectorSHA256 + `"
expiresAt: tomorrow
---
kind: ConfigMap
metadata: {name: e}
---
kind: ClusterAuthToken
metadata: {name: f}
userName: u
hash: "` + vectorSHA256 + `"
---
kind: ClusterAuthToken
metadata: {name: f}
userName: u
hash: "` + vectorSHA256 + `"
`
	_, err := Decode(strings.NewReader(in))
	if err == nil {
		t.Fatal("bad input accepted")
	}
	for _, want := range []string{
		"ClusterAuthToken a: hash: unknown Rancher hash version",
		"ClusterAuthToken b: no userName",
		"ClusterAuthToken c: no hash, and no Secret",
		`ClusterAuthToken d: expiresAt "tomorrow"`,
		"ConfigMap e: unsupported kind",
		"ClusterAuthToken f: name given twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Decode(strings.NewReader("{{{")); err == nil {
		t.Error("garbage accepted")
	}
}
