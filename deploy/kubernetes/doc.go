// Package kubernetes holds tokenstore's Kubernetes manifests (a kustomize
// base: the StatefulSet, its Services, PodDisruptionBudget, ConfigMap,
// certificate Secret and kube-apiserver webhook kubeconfig) and the test
// that keeps them honest: every manifest is decoded strictly into the
// k8s.io/api types, the member's flags are parsed by tokenstore's own flag
// set, and the wiring between them (ports, probes, selectors, the gossip
// seed naming the headless Service, the webhook URLs) is checked. There is
// no Go code to import here.
package kubernetes
