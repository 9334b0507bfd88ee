package ctl

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is stamped at link time:
//
//	go build -ldflags "-X github.com/tokenstore/tokenstore/ctl.version=v1.2.3" ./cmd/tokenctl
//
// It is the one package-level variable, written only by the linker and
// never at run time, so it does not break Main's "no package state" rule.
var version string

// versionString is the stamped version, else the module version the binary
// was built from (set by "go install module@version"), else "(devel)".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// versionJSON is the JSON form of "tokenctl version".
type versionJSON struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tokenctl's version (does not contact the cluster)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			v := versionJSON{
				Version:   versionString(),
				GoVersion: runtime.Version(),
				Platform:  runtime.GOOS + "/" + runtime.GOARCH,
			}
			return a.print(o, "print version", v, func() string {
				return fmt.Sprintf("tokenctl %s (%s, %s)\n", v.Version, v.GoVersion, v.Platform)
			})
		},
	}
}
