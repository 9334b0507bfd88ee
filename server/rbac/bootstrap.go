package rbac

import (
	_ "embed"
	"fmt"
)

// bootstrapPolicy is Kubernetes' default user-facing ClusterRoles.
//
//go:embed bootstrap.yaml
var bootstrapPolicy []byte

// Bootstrap returns Kubernetes' default user-facing ClusterRoles:
// cluster-admin, the aggregated admin, edit and view, and the
// system:aggregate-to-admin, -edit and -view roles that give them their
// rules, as kube-apiserver's RBAC bootstrap policy defines them.
func Bootstrap() ([]*Object, error) {
	objs, err := Parse(bootstrapPolicy)
	if err != nil {
		return nil, fmt.Errorf("bootstrap policy: %w", err)
	}
	return objs, nil
}
