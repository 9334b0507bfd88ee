package kubernetes

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/tokenstore/tokenstore/server"
)

// kustomization is the part of kustomize's Kustomization this base uses;
// decoding it strictly catches a field this test does not know about.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	SecretGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"secretGenerator"`
	GeneratorOptions struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"generatorOptions"`
}

// manifests is every object of the base, by kind and name.
type manifests struct {
	kust       kustomization
	namespaces map[string]*corev1.Namespace
	accounts   map[string]*corev1.ServiceAccount
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	sets       map[string]*appsv1.StatefulSet
	pdbs       map[string]*policyv1.PodDisruptionBudget
	// webhook is the kube-apiserver webhook kubeconfig of the generator.
	webhook *clientcmdv1.Config
}

// decodeStrict decodes one YAML document into out, refusing unknown and
// duplicate fields.
func decodeStrict(t *testing.T, where string, doc []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, out); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

// documents splits a YAML stream into its non-empty documents.
func documents(b []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// decodeObjects decodes a stream of Kubernetes objects into m, typed by kind.
func (m *manifests) decodeObjects(t *testing.T, file string, b []byte) []string {
	t.Helper()
	var kinds []string
	for i, doc := range documents(b) {
		where := fmt.Sprintf("%s document %d", file, i+1)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		kinds = append(kinds, tm.Kind)
		add := func(obj interface{ GetName() string }, into func(string)) {
			decodeStrict(t, where, doc, obj)
			if obj.GetName() == "" {
				t.Fatalf("%s: %s without a name", where, tm.Kind)
			}
			into(obj.GetName())
		}
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "v1/Namespace":
			o := &corev1.Namespace{}
			add(o, func(n string) { m.namespaces[n] = o })
		case "v1/ServiceAccount":
			o := &corev1.ServiceAccount{}
			add(o, func(n string) { m.accounts[n] = o })
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			add(o, func(n string) { m.configMaps[n] = o })
		case "v1/Secret":
			o := &corev1.Secret{}
			add(o, func(n string) { m.secrets[n] = o })
		case "v1/Service":
			o := &corev1.Service{}
			add(o, func(n string) { m.services[n] = o })
		case "apps/v1/StatefulSet":
			o := &appsv1.StatefulSet{}
			add(o, func(n string) { m.sets[n] = o })
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			add(o, func(n string) { m.pdbs[n] = o })
		default:
			t.Fatalf("%s: kind %s is not one this test knows; decode and check it here", where, gvk)
		}
	}
	return kinds
}

func newManifests() *manifests {
	return &manifests{
		namespaces: map[string]*corev1.Namespace{}, accounts: map[string]*corev1.ServiceAccount{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, sets: map[string]*appsv1.StatefulSet{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
}

// load decodes the kustomization, every manifest it lists (which must be
// every YAML file here but the kubeconfig it generates a Secret from) and
// the generated kubeconfig.
func load(t *testing.T) *manifests {
	t.Helper()
	m := newManifests()
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	decodeStrict(t, "kustomization.yaml", b, &m.kust)
	if m.kust.Kind != "Kustomization" || m.kust.Namespace == "" {
		t.Fatalf("kustomization.yaml: kind %q, namespace %q", m.kust.Kind, m.kust.Namespace)
	}
	generated := map[string]bool{}
	for _, g := range m.kust.SecretGenerator {
		for _, f := range g.Files {
			_, src, ok := strings.Cut(f, "=")
			if !ok {
				src = f
			}
			generated[src] = true
		}
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		listed := slices.Contains(m.kust.Resources, f)
		switch {
		case f == "kustomization.yaml":
		case generated[f]:
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m.webhook = &clientcmdv1.Config{}
			decodeStrict(t, f, b, m.webhook)
		case !listed:
			t.Errorf("%s is not listed in kustomization.yaml resources", f)
		}
	}
	for _, r := range m.kust.Resources {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", r, err)
		}
		if kinds := m.decodeObjects(t, r, b); len(kinds) == 0 {
			t.Errorf("%s holds no object", r)
		}
	}
	if m.webhook == nil {
		t.Fatal("no webhook kubeconfig among the secretGenerator files")
	}
	return m
}

func one[T any](t *testing.T, what string, m map[string]T) (string, T) {
	t.Helper()
	if len(m) != 1 {
		t.Fatalf("want exactly one %s, have %d", what, len(m))
	}
	for k, v := range m {
		return k, v
	}
	panic("unreachable")
}

// matches reports whether selector selects an object with labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// memberConfig parses the container's arguments with tokenstore's own flag
// set, as pod ordinal 1 in namespace ns would run them, with the ConfigMap
// file they name, and validates the result as tokenstore does at start.
func memberConfig(t *testing.T, m *manifests, c corev1.Container, mounts map[string]string, ns string) server.Config {
	t.Helper()
	podEnv := map[string]string{"POD_NAME": "tokenstore-1", "POD_NAMESPACE": ns, "POD_IP": "10.1.2.3"}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
			continue
		}
		switch e.ValueFrom.FieldRef.FieldPath {
		case "metadata.name", "metadata.namespace", "status.podIP":
		default:
			t.Errorf("env %s from unexpected field %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
		}
	}
	var args []string
	for _, a := range c.Args {
		expanded := regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(a, func(v string) string {
			name := v[2 : len(v)-1]
			val, ok := podEnv[name]
			if !ok || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }) {
				t.Errorf("argument %q uses $(%s), which the container's env does not define", a, name)
			}
			return val
		})
		args = append(args, expanded)
	}
	// Only the file and the arguments count: the test's own environment
	// must not leak TOKENSTORE_* settings in.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TOKENSTORE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	var cfg server.Config
	var configFile string
	fs := pflag.NewFlagSet("tokenstore", pflag.ContinueOnError)
	fs.StringVar(&configFile, "config", "", "")
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("tokenstore would refuse its arguments %q: %v", args, err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("stray arguments %q", fs.Args())
	}
	if configFile == "" {
		t.Fatal("no --config: the ConfigMap is not read")
	}
	// The file --config names comes from a ConfigMap volume.
	dir, key := filepath.Dir(configFile), filepath.Base(configFile)
	volume, ok := mounts[dir]
	if !ok {
		t.Fatalf("--config %s: nothing is mounted at %s", configFile, dir)
	}
	var cm *corev1.ConfigMap
	for _, v := range podVolumes(m) {
		if v.Name == volume && v.ConfigMap != nil {
			cm = m.configMaps[v.ConfigMap.Name]
		}
	}
	if cm == nil {
		t.Fatalf("--config %s: volume %s is not one of the ConfigMaps", configFile, volume)
	}
	content, ok := cm.Data[key]
	if !ok {
		t.Fatalf("--config %s: ConfigMap %s has no key %s", configFile, cm.Name, key)
	}
	tmp := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := server.LoadEnvAndFile(fs, tmp); err != nil {
		t.Fatalf("tokenstore would refuse ConfigMap %s: %v", cm.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("tokenstore would refuse its configuration: %v", err)
	}
	return cfg
}

func podVolumes(m *manifests) []corev1.Volume {
	for _, s := range m.sets {
		return s.Spec.Template.Spec.Volumes
	}
	return nil
}

func port(t *testing.T, hostPort string) (string, int32) {
	t.Helper()
	h, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	return h, int32(n)
}

// TestManifestsWiring decodes every manifest strictly and checks that the
// pieces fit: what the member listens on, what its probes and Services
// point at, what its peers and gossip seeds are called.
func TestManifestsWiring(t *testing.T) {
	m := load(t)
	ns := m.kust.Namespace
	if _, ok := m.namespaces[ns]; !ok {
		t.Errorf("the kustomization's namespace %s is not among the manifests' Namespaces", ns)
	}
	_, sts := one(t, "StatefulSet", m.sets)
	pod := sts.Spec.Template
	podLabels := pod.Labels

	// The StatefulSet.
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", sts.Spec.Replicas)
	}
	replicas := int(*sts.Spec.Replicas)
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: members must start together (OrderedReady deadlocks: pod 0 is never ready alone)", sts.Spec.PodManagementPolicy)
	}
	if sts.Spec.Selector == nil || !matches(sts.Spec.Selector.MatchLabels, podLabels) || len(sts.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector, podLabels)
	}
	if _, ok := m.accounts[pod.Spec.ServiceAccountName]; !ok {
		t.Errorf("service account %q is not among the manifests", pod.Spec.ServiceAccountName)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	cports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		if p.Name == "" {
			t.Errorf("container port %d has no name", p.ContainerPort)
		}
		cports[p.Name] = p
	}
	proto := func(p corev1.Protocol) corev1.Protocol {
		if p == "" {
			return corev1.ProtocolTCP
		}
		return p
	}

	// Volumes: every mount has a volume, every ConfigMap and Secret exists,
	// the claim template is mounted.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil {
			if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s: ConfigMap %s is not among the manifests", v.Name, v.ConfigMap.Name)
			}
		}
		if v.Secret != nil {
			if _, ok := m.secrets[v.Secret.SecretName]; !ok {
				t.Errorf("volume %s: Secret %s is not among the manifests", v.Name, v.Secret.SecretName)
			}
		}
	}
	claims := map[string]bool{}
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
		if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			t.Errorf("volume claim %s requests no storage", pvc.Name)
		}
	}
	mounts := map[string]string{} // path -> volume
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok && !claims[vm.Name] {
			t.Errorf("mount %s: no volume or claim template %s", vm.MountPath, vm.Name)
		}
		mounts[vm.MountPath] = vm.Name
	}

	cfg := memberConfig(t, m, c, mounts, ns)
	if !claims[mounts[cfg.DataDir]] {
		t.Errorf("--data-dir %s is not on a volumeClaimTemplate (data would not survive a restart)", cfg.DataDir)
	}

	// Listeners match the container ports.
	for _, l := range []struct{ flag, addr, port string }{
		{"listen-client", cfg.ListenClient, "client"},
		{"listen-peer", cfg.ListenPeer, "peer"},
		{"listen-http", cfg.ListenHTTP, "http"},
		{"listen-gossip", cfg.ListenGossip, "gossip"},
		{"listen-gossip", cfg.ListenGossip, "gossip-udp"},
	} {
		host, p := port(t, l.addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			t.Errorf("--%s %s: listen on every interface of the pod", l.flag, l.addr)
		}
		if cp, ok := cports[l.port]; !ok || cp.ContainerPort != p {
			t.Errorf("--%s %s does not match container port %s (%d)", l.flag, l.addr, l.port, cp.ContainerPort)
		}
	}
	if proto(cports["gossip-udp"].Protocol) != corev1.ProtocolUDP || proto(cports["gossip"].Protocol) != corev1.ProtocolTCP {
		t.Error("gossip needs its port in both TCP and UDP")
	}

	// Probes: readiness on /readyz, liveness (and startup) on /livez, on the
	// HTTP listener.
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET of %s", name, path)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s probe path %s, want %s", name, p.HTTPGet.Path, path)
		}
		if p.HTTPGet.Port.Type != intstr.String || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s probe port %s, want the named port http", name, p.HTTPGet.Port.String())
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/livez")
	probe("startup", c.StartupProbe, "/livez")

	// Graceful termination: the grace period covers the drain
	// (--shutdown-delay), the leadership hand-over (up to 3s) and the
	// graceful stop of the gRPC and HTTP servers (up to 5s each).
	if cfg.ShutdownDelay <= 0 {
		t.Error("shutdown-delay is 0: a terminating member closes its listeners while Services still route to it")
	}
	need := cfg.ShutdownDelay + 3*time.Second + 10*time.Second
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v is shorter than the %v a member may need to stop gracefully", g, need)
	}

	// Services.
	headless := m.services[sts.Spec.ServiceName]
	if headless == nil {
		t.Fatalf("serviceName %s is not among the Services", sts.Spec.ServiceName)
	}
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s must be headless (clusterIP: None) to give pods DNS names", headless.Name)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: publishNotReadyAddresses must be true: members find each other before any is ready", headless.Name)
	}
	svcPort := map[string]map[string]corev1.ServicePort{}
	for name, s := range m.services {
		if !matches(s.Spec.Selector, podLabels) {
			t.Errorf("Service %s selector %v does not select the member pods %v", name, s.Spec.Selector, podLabels)
		}
		svcPort[name] = map[string]corev1.ServicePort{}
		for _, p := range s.Spec.Ports {
			svcPort[name][p.Name] = p
			cp, ok := cports[p.TargetPort.StrVal]
			if p.TargetPort.Type != intstr.String || !ok {
				t.Errorf("Service %s port %s: target %s is not a named container port", name, p.Name, p.TargetPort.String())
				continue
			}
			if proto(p.Protocol) != proto(cp.Protocol) {
				t.Errorf("Service %s port %s: protocol %s, container port %s", name, p.Name, proto(p.Protocol), proto(cp.Protocol))
			}
			if p.Port != cp.ContainerPort {
				t.Errorf("Service %s port %s is %d, the member listens on %d: addresses built from one would miss the other", name, p.Name, p.Port, cp.ContainerPort)
			}
		}
		if s != headless && (s.Spec.ClusterIP == corev1.ClusterIPNone || s.Spec.PublishNotReadyAddresses) {
			t.Errorf("client Service %s must balance over ready members only", name)
		}
	}
	for _, p := range []string{"peer", "gossip", "gossip-udp"} {
		if _, ok := svcPort[headless.Name][p]; !ok {
			t.Errorf("headless Service %s lacks port %s", headless.Name, p)
		}
	}
	clientSvc := ""
	for name, ports := range svcPort {
		if _, ok := ports["client"]; ok && name != headless.Name {
			clientSvc = name
		}
	}
	if clientSvc == "" {
		t.Error("no client Service for the gRPC API")
	}

	// Addresses the member gives others: its stable DNS name through the
	// headless Service, and gossip seeded by the headless Service's name.
	podDNS := func(pod string) string { return pod + "." + headless.Name + "." + ns + ".svc" }
	for _, a := range []struct{ flag, addr, port string }{
		{"advertise-peer", cfg.AdvertisePeer, "peer"},
		{"advertise-client", cfg.AdvertiseClient, "client"},
	} {
		host, p := port(t, a.addr)
		if host != podDNS("tokenstore-1") && host != podDNS("tokenstore-1")+".cluster.local" {
			t.Errorf("--%s %s: want the pod's DNS name %s", a.flag, a.addr, podDNS("tokenstore-1"))
		}
		if p != cports[a.port].ContainerPort {
			t.Errorf("--%s %s: port is not the %s port %d", a.flag, a.addr, a.port, cports[a.port].ContainerPort)
		}
	}
	if host, p := port(t, cfg.AdvertiseGossip); host != "10.1.2.3" || p != cports["gossip"].ContainerPort {
		t.Errorf("--advertise-gossip %s: want the pod IP and the gossip port", cfg.AdvertiseGossip)
	}
	if len(cfg.Join) == 0 {
		t.Fatal("no --join: members would not find each other")
	}
	for _, seed := range cfg.Join {
		host, p := port(t, seed)
		if host != headless.Name+"."+ns+".svc" && host != headless.Name+"."+ns+".svc.cluster.local" {
			t.Errorf("--join %s does not name the headless Service %s in namespace %s", seed, headless.Name, ns)
		}
		if p != svcPort[headless.Name]["gossip"].Port {
			t.Errorf("--join %s: port is not the gossip port", seed)
		}
	}
	if cfg.BootstrapExpect != replicas {
		t.Errorf("--bootstrap-expect %d, replicas %d: the first start would form no cluster or a smaller one", cfg.BootstrapExpect, replicas)
	}

	// Disruptions and placement.
	_, pdb := one(t, "PodDisruptionBudget", m.pdbs)
	if pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the member pods", pdb.Spec.Selector)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 (a quorum of 3 survives one), have %v / %v", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	aff := pod.Spec.Affinity
	spread := false
	if aff != nil && aff.PodAntiAffinity != nil {
		for _, term := range aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && term.LabelSelector != nil && matches(term.LabelSelector.MatchLabels, podLabels) {
				spread = true
			}
		}
	}
	if !spread {
		t.Error("no required pod anti-affinity on kubernetes.io/hostname for the member pods: one node could hold a quorum")
	}

	// The kube-apiserver webhook kubeconfig names the HTTP Service.
	checkWebhookKubeconfig(t, "webhook-kubeconfig.yaml", m.webhook, ns, headless.Name, sts.Name, replicas, svcPort)
}

// checkWebhookKubeconfig checks a kube-apiserver webhook kubeconfig: its
// current context's server is a webhook route on the HTTP port of a client
// Service or of one member pod.
func checkWebhookKubeconfig(t *testing.T, file string, cfg *clientcmdv1.Config, ns, headless, sts string, replicas int, svcPort map[string]map[string]corev1.ServicePort) {
	t.Helper()
	var cluster string
	for _, c := range cfg.Contexts {
		if c.Name == cfg.CurrentContext {
			cluster = c.Context.Cluster
		}
	}
	var server string
	for _, c := range cfg.Clusters {
		if c.Name == cluster {
			server = c.Cluster.Server
		}
	}
	if server == "" {
		t.Errorf("%s: the current context %q names no cluster with a server", file, cfg.CurrentContext)
		return
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Errorf("%s: server %q: %v", file, server, err)
		return
	}
	switch u.Path {
	case "/apis/authentication.k8s.io/v1/tokenreviews", "/apis/authentication.k8s.io/v1beta1/tokenreviews", "/v1/authenticate":
	default:
		t.Errorf("%s: server path %s is not a tokenstore webhook route", file, u.Path)
	}
	host := strings.TrimSuffix(u.Hostname(), ".cluster.local")
	p, _ := strconv.Atoi(u.Port())
	labels := strings.Split(host, ".")
	switch {
	case len(labels) == 3 && labels[1] == ns && labels[2] == "svc":
		// <service>.<ns>.svc: a client Service with the HTTP port.
		sp, ok := svcPort[labels[0]]["http"]
		if !ok || labels[0] == headless {
			t.Errorf("%s: %s is not a client Service with an http port", file, u.Host)
		} else if int32(p) != sp.Port {
			t.Errorf("%s: port %d, Service %s serves HTTP on %d", file, p, labels[0], sp.Port)
		}
	case len(labels) == 4 && labels[1] == headless && labels[2] == ns && labels[3] == "svc":
		// <pod>.<headless>.<ns>.svc: one member.
		ord, err := strconv.Atoi(strings.TrimPrefix(labels[0], sts+"-"))
		if !strings.HasPrefix(labels[0], sts+"-") || err != nil || ord < 0 || ord >= replicas {
			t.Errorf("%s: %s is not one of the %d pods of StatefulSet %s", file, labels[0], replicas, sts)
		}
		if int32(p) != svcPort[headless]["http"].Port {
			t.Errorf("%s: port %d is not the members' HTTP port", file, p)
		}
	default:
		t.Errorf("%s: %s is neither <service>.%s.svc nor <pod>.%s.%s.svc", file, u.Host, ns, headless, ns)
	}
}

// TestWebhookKubeconfigsMatchManifests checks the kubeconfigs of
// deploy/webhook against these manifests' Service and pod names.
func TestWebhookKubeconfigsMatchManifests(t *testing.T) {
	m := load(t)
	_, sts := one(t, "StatefulSet", m.sets)
	svcPort := map[string]map[string]corev1.ServicePort{}
	for name, s := range m.services {
		svcPort[name] = map[string]corev1.ServicePort{}
		for _, p := range s.Spec.Ports {
			svcPort[name][p.Name] = p
		}
	}
	files, err := filepath.Glob("../webhook/*.kubeconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no kubeconfigs in deploy/webhook")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg clientcmdv1.Config
		decodeStrict(t, f, b, &cfg)
		checkWebhookKubeconfig(t, f, &cfg, m.kust.Namespace, sts.Spec.ServiceName, sts.Name, int(*sts.Spec.Replicas), svcPort)
	}
}

// TestKustomizeBuild builds the base with kubectl's kustomize, when kubectl
// is installed, and decodes what it renders: the namespace is applied to
// every object and the webhook Secret is generated.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	m := newManifests()
	kinds := m.decodeObjects(t, "kubectl kustomize output", out)
	src := load(t)
	want := len(src.namespaces) + len(src.accounts) + len(src.configMaps) + len(src.secrets) + len(src.services) + len(src.sets) + len(src.pdbs) + 1
	if len(kinds) != want {
		t.Errorf("kustomize rendered %d objects (%v), want %d", len(kinds), kinds, want)
	}
	for _, s := range m.services {
		if s.Namespace != src.kust.Namespace {
			t.Errorf("Service %s rendered in namespace %q", s.Name, s.Namespace)
		}
	}
	sec, ok := m.secrets["tokenstore-webhook-kubeconfig"]
	if !ok {
		t.Fatal("the webhook kubeconfig Secret was not generated")
	}
	raw, ok := sec.Data["webhook.kubeconfig.yaml"]
	if !ok {
		t.Fatalf("generated Secret keys %v", keys(sec.Data))
	}
	if want, _ := os.ReadFile("webhook-kubeconfig.yaml"); !bytes.Equal(raw, want) {
		t.Error("the generated Secret does not hold webhook-kubeconfig.yaml")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
