package server

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tokenstore/tokenstore/server/oidc"
)

func TestJWTLeewayFlag(t *testing.T) {
	if d := DefaultConfig().JWTLeeway; d != oidc.DefaultLeeway || oidc.DefaultLeeway != time.Minute {
		t.Fatalf("default --jwt-leeway %s, want 1m (docs/oidc.md says why)", d)
	}
	for v, ok := range map[string]bool{"0s": true, "2m": true, "10m": true, "11m": false, "-1s": false} {
		var c Config
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse([]string{"--insecure", "--jwt-leeway", v}); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "--jwt-leeway")) {
			t.Errorf("--jwt-leeway %s: %v", v, err)
		}
	}
}
