package rancher

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseHash checks the Rancher hash parser on any input: no panic; a
// refusal never repeats the salt or key it was given; an accepted hash has
// a known format. Hashes made by NewHash from the fuzzed secret parse and
// verify that secret and no other.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{vectorScrypt, vectorSHA256, vectorSHA3,
		"$1:00:15:8:1:" + strings.Repeat("A", 22), "$1:73616c74:24:1:1:qCa4R/lnQ12ieJprltvPoKqUflw",
		"$2::", "$3:2:c2FsdA:a2V5", "$3:1:c2FsdA", "$4:x:y", "plain", "$", "$1:zz:1:1:1:k",
		"$1:73616c74:15:8:1:" + strings.Repeat("/", 200)} {
		f.Add(s, vectorSecret)
	}
	f.Fuzz(func(t *testing.T, s, secret string) {
		h, err := ParseHash(s)
		if err != nil {
			if h != nil {
				t.Fatal("an error and a hash")
			}
			for _, field := range strings.Split(s, ":") {
				if len(field) >= 12 && isBase64ish(field) && strings.Contains(err.Error(), field) {
					t.Fatalf("refusal %q repeats part of the hash", err)
				}
			}
		} else if f := h.Format(); f != FormatScrypt && f != FormatSHA256 && f != FormatSHA3 {
			t.Fatalf("accepted with format %d", f)
		} else if h.String() != s {
			t.Fatalf("accepted %q, but it reads back as %q", s, h.String())
		} else if !h.Slow() {
			h.Verify(secret) // must not panic; the answer is the hash's business
		}
		for _, f := range []Format{FormatSHA256, FormatSHA3} {
			enc, err := NewHash(f, secret)
			if err != nil {
				t.Fatal(err)
			}
			h, err := ParseHash(enc)
			if err != nil {
				t.Fatalf("NewHash(%s) made %q, which does not parse: %v", f, enc, err)
			}
			if !h.Verify(secret) || h.Verify(secret+"x") {
				t.Fatalf("%s hash of the secret does not verify it alone", f)
			}
		}
	})
}

func isBase64ish(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// FuzzDecode checks the ClusterAuthToken import decoder (what "tokenctl
// token import --format rancher" reads) on any input: no panic; what it
// returns is complete (name, user, a hash that parses), sorted by name
// without repeats; and the tokens, written back as ClusterAuthToken and
// ClusterUserAttribute objects, decode to the same tokens.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`apiVersion: cluster.cattle.io/v3
kind: ClusterAuthToken
metadata: {name: kubeconfig-u-abc, namespace: cattle-system}
userName: u-abc
hash: "` + vectorSHA3 + `"
enabled: true
expiresAt: "2031-02-03T04:05:06Z"
---
apiVersion: cluster.cattle.io/v3
kind: ClusterUserAttribute
metadata: {name: u-abc}
groups: ["github_org://1"]
enabled: true
`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"kind":"ClusterAuthToken","metadata":{"name":"t","namespace":"n"},"userName":"u","hash":""},` +
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t","namespace":"n"},"data":{"hash":"JDI6YzJGc2RBOmEyVjU="}}]}`))
	f.Add([]byte(`{"kind":"ClusterAuthToken","metadata":{"name":"a"},"userName":"u","hash":"` + vectorSHA256 + `","expiresAt":"2030-01-01T00:00:00.5+05:00"}
{"kind":"ClusterAuthToken","metadata":{"name":"a"},"userName":"u","hash":"` + vectorSHA256 + `"}`))
	f.Add([]byte(`{"kind":"List","items":[{"kind":"List"}]}`))
	f.Add([]byte("---\n---\nnull\n"))
	f.Add([]byte(`{"kind":"ConfigMap","metadata":{"name":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := Decode(bytes.NewReader(data))
		if err != nil {
			if toks != nil {
				t.Fatal("an error and tokens")
			}
			return
		}
		for i, tk := range toks {
			if tk.Name == "" || tk.UserName == "" {
				t.Fatalf("token %d without name or user: %+v", i, tk)
			}
			if _, err := ParseHash(tk.Hash); err != nil {
				t.Fatalf("token %s: hash does not parse: %v", tk.Name, err)
			}
			if i > 0 && toks[i-1].Name >= tk.Name {
				t.Fatalf("tokens not sorted by name without repeats: %q then %q", toks[i-1].Name, tk.Name)
			}
		}
		again, err := Decode(bytes.NewReader(encodeTokens(t, toks)))
		if err != nil {
			t.Fatalf("tokens written back do not decode: %v", err)
		}
		if !sameTokens(toks, again) {
			t.Fatalf("written back and decoded:\n%+v\nfirst decoded:\n%+v", again, toks)
		}
	})
}

// encodeTokens writes tokens as a stream of JSON objects: one
// ClusterAuthToken each and one ClusterUserAttribute per user that had one.
func encodeTokens(t *testing.T, toks []Token) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	users := map[string]bool{}
	for _, tk := range toks {
		o := map[string]any{"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterAuthToken",
			"metadata": map[string]any{"name": tk.Name, "namespace": tk.Namespace},
			"userName": tk.UserName, "hash": tk.Hash, "enabled": tk.Enabled}
		if !tk.ExpiresAt.IsZero() {
			o["expiresAt"] = tk.ExpiresAt.Format(time.RFC3339Nano)
		}
		if err := enc.Encode(o); err != nil {
			t.Fatal(err)
		}
		if tk.HasUserAttribute && !users[tk.UserName] {
			users[tk.UserName] = true
			if err := enc.Encode(map[string]any{"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute",
				"metadata": map[string]any{"name": tk.UserName}, "groups": tk.Groups, "enabled": true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.Bytes()
}

func sameTokens(a, b []Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.Namespace != y.Namespace || x.UserName != y.UserName || x.Hash != y.Hash ||
			x.Enabled != y.Enabled || x.HasUserAttribute != y.HasUserAttribute || !x.ExpiresAt.Equal(y.ExpiresAt) ||
			!slices.Equal(x.Groups, y.Groups) {
			return false
		}
	}
	return true
}
