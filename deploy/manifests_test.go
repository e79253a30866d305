// Package deploy holds the files that install nri-cni: the containerd
// snippet, the Kubernetes manifests and the example config and networks.
// Its tests decode each file strictly and check it against the plugin's
// defaults, so that the files and the code cannot drift apart.
package deploy

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/nri-cni/nri-cni/config"
)

const (
	kubernetesDir = "kubernetes"
	snippetFile   = "containerd/nri-cni.toml"
	exampleConfig = "nri-cni.yaml"

	// criNetNSDir is where containerd's CRI pins pod network namespaces
	// (/var/run/netns in containerd v2.4, unless netns_mounts_under_state_dir
	// is set).
	criNetNSDir = "/var/run/netns"
	// xtablesLock is the lock file of iptables.
	xtablesLock = "/run/xtables.lock"

	// imageRepository is the image name that `make image` writes, without
	// its tag.
	imageRepository = "ghcr.io/nri-cni/nri-cni"
)

// manifests is every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	namespace      *corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	configMap      *corev1.ConfigMap
	daemonSet      *appsv1.DaemonSet
}

// decodeStrict decodes one YAML document into out and fails on any field
// that the type does not have.
func decodeStrict(t *testing.T, source string, document []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(document, out); err != nil {
		t.Fatalf("failed to decode %s strictly: %v", source, err)
	}
}

// splitDocuments splits a YAML stream at its document separators.
func splitDocuments(data []byte) [][]byte {
	var documents [][]byte
	for _, document := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(document)) != "" {
			documents = append(documents, []byte(document))
		}
	}
	return documents
}

func stripComments(document string) string {
	var lines []string
	for _, line := range strings.Split(document, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// decodeObjects decodes every document of a YAML stream by its kind into
// into, and fails on a kind the install does not ship or a repeated kind.
func decodeObjects(t *testing.T, source string, data []byte, into *manifests) {
	t.Helper()
	for _, document := range splitDocuments(data) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(document, &meta); err != nil {
			t.Fatalf("failed to read kind of a document in %s: %v", source, err)
		}
		kinds := map[string]struct {
			apiVersion string
			target     any
			decoded    bool
		}{
			"Namespace":      {"v1", &into.namespace, into.namespace != nil},
			"ServiceAccount": {"v1", &into.serviceAccount, into.serviceAccount != nil},
			"ConfigMap":      {"v1", &into.configMap, into.configMap != nil},
			"DaemonSet":      {"apps/v1", &into.daemonSet, into.daemonSet != nil},
		}
		kind, ok := kinds[meta.Kind]
		if !ok {
			t.Fatalf("%s has a %s %s, which the install does not ship", source, meta.APIVersion, meta.Kind)
		}
		if meta.APIVersion != kind.apiVersion {
			t.Errorf("%s: %s has apiVersion %q, want %q", source, meta.Kind, meta.APIVersion, kind.apiVersion)
		}
		if kind.decoded {
			t.Fatalf("%s: a second %s", source, meta.Kind)
		}
		decodeStrict(t, source, document, kind.target)
	}
}

// readKustomization decodes kustomization.yaml into the fields it may use.
func readKustomization(t *testing.T) (resources []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubernetesDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewTag  string `json:"newTag"`
			NewName string `json:"newName,omitempty"`
		} `json:"images"`
	}
	decodeStrict(t, "kustomization.yaml", data, &kustomization)
	if kustomization.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml kind = %q, want Kustomization", kustomization.Kind)
	}
	for _, image := range kustomization.Images {
		if image.Name != imageRepository {
			t.Errorf("kustomization.yaml sets image %q, want %q", image.Name, imageRepository)
		}
	}
	return kustomization.Resources
}

// loadManifests decodes every file that kustomization.yaml lists, and checks
// that it lists every YAML file of the folder.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	resources := readKustomization(t)
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		if name != "kustomization.yaml" && !slices.Contains(resources, name) {
			t.Errorf("kustomization.yaml does not list %s", name)
		}
	}

	m := &manifests{}
	for _, resource := range resources {
		data, err := os.ReadFile(filepath.Join(kubernetesDir, resource))
		if err != nil {
			t.Fatalf("failed to read resource %s of kustomization.yaml: %v", resource, err)
		}
		decodeObjects(t, resource, data, m)
	}
	if m.namespace == nil || m.serviceAccount == nil || m.configMap == nil || m.daemonSet == nil {
		t.Fatalf("manifests lack an object: namespace %v, service account %v, config map %v, daemon set %v",
			m.namespace != nil, m.serviceAccount != nil, m.configMap != nil, m.daemonSet != nil)
	}
	return m
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)

	for _, object := range []struct {
		kind, namespace string
	}{
		{"ServiceAccount", m.serviceAccount.Namespace},
		{"ConfigMap", m.configMap.Namespace},
		{"DaemonSet", m.daemonSet.Namespace},
	} {
		if object.namespace != m.namespace.Name {
			t.Errorf("%s is in namespace %q, want %q", object.kind, object.namespace, m.namespace.Name)
		}
	}
	if got := m.namespace.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace enforces Pod Security level %q, want privileged for host namespaces and capabilities", got)
	}
}

func TestMakefileImageName(t *testing.T) {
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE\s*\?=\s*(\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("Makefile sets no IMAGE ?= NAME for make image")
	}
	if string(m[1]) != imageRepository {
		t.Errorf("make image names the image %s, but the manifests run %s", m[1], imageRepository)
	}
}

func TestKustomizeBuild(t *testing.T) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), kubernetesDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubernetesDir, err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	decodeObjects(t, "kustomize build", rendered, m)
	if m.daemonSet == nil {
		t.Fatal("kustomize build has no DaemonSet")
	}
	image := m.daemonSet.Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(image, imageRepository+":") {
		t.Errorf("kustomize build sets image %q, want %s:TAG", image, imageRepository)
	}
}

// container returns the only container of the DaemonSet.
func container(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	spec := &ds.Spec.Template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("DaemonSet has %d containers and %d init containers, want one container",
			len(spec.Containers), len(spec.InitContainers))
	}
	return &spec.Containers[0]
}

// hostMount is a volume mount together with the host path behind it.
type hostMount struct {
	mount    corev1.VolumeMount
	hostPath *corev1.HostPathVolumeSource
}

// mountsByPath returns the mounts of the container by mount path.
func mountsByPath(t *testing.T, ds *appsv1.DaemonSet) map[string]hostMount {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, volume := range ds.Spec.Template.Spec.Volumes {
		volumes[volume.Name] = volume
	}
	mounts := map[string]hostMount{}
	for _, mount := range container(t, ds).VolumeMounts {
		volume, ok := volumes[mount.Name]
		if !ok {
			t.Fatalf("volume mount %s names no volume", mount.Name)
		}
		mounts[path.Clean(mount.MountPath)] = hostMount{mount: mount, hostPath: volume.HostPath}
	}
	return mounts
}

// parseConfigMap returns the plugin config of the ConfigMap and the path the
// DaemonSet passes to --config.
func parseConfigMap(t *testing.T, m *manifests) (*config.Config, string) {
	t.Helper()
	ctr := container(t, m.daemonSet)
	var configFlag string
	for _, arg := range append(slices.Clone(ctr.Command), ctr.Args...) {
		if value, ok := strings.CutPrefix(arg, "--config="); ok {
			configFlag = value
		}
	}
	if configFlag == "" {
		t.Fatalf("container args %q have no --config=PATH", ctr.Args)
	}

	var configVolume string
	for _, mount := range ctr.VolumeMounts {
		if path.Clean(mount.MountPath) == path.Dir(configFlag) {
			configVolume = mount.Name
		}
	}
	var key string
	for _, volume := range m.daemonSet.Spec.Template.Spec.Volumes {
		if volume.Name == configVolume && volume.ConfigMap != nil {
			if volume.ConfigMap.Name != m.configMap.Name {
				t.Errorf("config volume uses ConfigMap %q, want %q", volume.ConfigMap.Name, m.configMap.Name)
			}
			key = path.Base(configFlag)
		}
	}
	if key == "" {
		t.Fatalf("--config=%s is not in a ConfigMap volume", configFlag)
	}
	data, ok := m.configMap.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s for --config=%s", m.configMap.Name, key, configFlag)
	}
	cfg, err := config.Parse([]byte(data), "ConfigMap "+m.configMap.Name)
	if err != nil {
		t.Fatalf("ConfigMap config is invalid: %v", err)
	}
	return cfg, configFlag
}

func TestConfigMapIsDefaultConfig(t *testing.T) {
	cfg, _ := parseConfigMap(t, loadManifests(t))
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("ConfigMap config = %+v, want the defaults %+v", cfg, config.Default())
	}

	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	example, err := config.Parse(data, exampleConfig)
	if err != nil {
		t.Fatalf("%s, the config that make install ships, is invalid: %v", exampleConfig, err)
	}
	if !reflect.DeepEqual(example, config.Default()) {
		t.Errorf("%s = %+v, want the defaults %+v", exampleConfig, example, config.Default())
	}
}

func TestDaemonSetMountsMatchConfig(t *testing.T) {
	m := loadManifests(t)
	cfg, configFlag := parseConfigMap(t, m)
	mounts := mountsByPath(t, m.daemonSet)

	type want struct {
		path     string
		readOnly bool
		hostType corev1.HostPathType
		purpose  string
	}
	wants := []want{
		{path.Dir(cfg.NRISocket), false, corev1.HostPathDirectoryOrCreate, "nriSocket's folder"},
		{path.Dir(cfg.ContainerdSocket), false, corev1.HostPathDirectoryOrCreate, "containerdSocket's folder"},
		{criNetNSDir, true, corev1.HostPathDirectoryOrCreate, "the CRI's pod netns folder"},
		{cfg.CNIConfDir, true, corev1.HostPathDirectoryOrCreate, "cniConfDir"},
		{cfg.CNICacheDir, false, corev1.HostPathDirectoryOrCreate, "cniCacheDir"},
		{cfg.StateDir, false, corev1.HostPathDirectoryOrCreate, "stateDir"},
		{xtablesLock, false, corev1.HostPathFileOrCreate, "the iptables lock"},
	}
	for _, dir := range cfg.CNIBinDirs {
		wants = append(wants, want{dir, true, corev1.HostPathDirectory, "cniBinDirs"})
	}

	covered := map[string]bool{path.Dir(configFlag): true}
	for _, w := range wants {
		covered[w.path] = true
		got, ok := mounts[w.path]
		if !ok {
			t.Errorf("no volume mount at %s (%s)", w.path, w.purpose)
			continue
		}
		if got.hostPath == nil {
			t.Errorf("mount %s (%s) is not a hostPath volume", w.path, w.purpose)
			continue
		}
		if path.Clean(got.hostPath.Path) != w.path {
			t.Errorf("mount %s (%s) comes from host path %s, want the same path", w.path, w.purpose, got.hostPath.Path)
		}
		if got.mount.ReadOnly != w.readOnly {
			t.Errorf("mount %s (%s) readOnly = %v, want %v", w.path, w.purpose, got.mount.ReadOnly, w.readOnly)
		}
		if got.hostPath.Type == nil || *got.hostPath.Type != w.hostType {
			t.Errorf("host path %s (%s) type = %v, want %s", w.path, w.purpose, got.hostPath.Type, w.hostType)
		}
	}
	for mountPath := range mounts {
		if !covered[mountPath] {
			t.Errorf("mount %s is not a path of the plugin's config", mountPath)
		}
	}

	netns := mounts[criNetNSDir].mount
	if netns.MountPropagation == nil || *netns.MountPropagation != corev1.MountPropagationHostToContainer {
		t.Errorf("mount %s propagation = %v, want HostToContainer: containerd pins new netns files there",
			criNetNSDir, netns.MountPropagation)
	}
	for mountPath, got := range mounts {
		if mountPath != criNetNSDir && got.mount.MountPropagation != nil &&
			*got.mount.MountPropagation != corev1.MountPropagationNone {
			t.Errorf("mount %s propagation = %s, want none", mountPath, *got.mount.MountPropagation)
		}
	}
}

func TestDaemonSetPodSpec(t *testing.T) {
	m := loadManifests(t)
	spec := m.daemonSet.Spec.Template.Spec
	ctr := container(t, m.daemonSet)

	if !spec.HostNetwork {
		t.Error("hostNetwork is off: CNI plugins work in the host's network namespace")
	}
	if !spec.HostPID {
		t.Error("hostPID is off: /proc/<pid>/ns/net of pause tasks must resolve")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q, want system-node-critical", spec.PriorityClassName)
	}
	if spec.ServiceAccountName != m.serviceAccount.Name {
		t.Errorf("serviceAccountName = %q, want %q", spec.ServiceAccountName, m.serviceAccount.Name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token, which nri-cni never uses")
	}
	tolerateAll := false
	for _, toleration := range spec.Tolerations {
		if toleration.Operator == corev1.TolerationOpExists && toleration.Key == "" && toleration.Effect == "" {
			tolerateAll = true
		}
	}
	if !tolerateAll {
		t.Errorf("tolerations = %+v, want one with operator Exists and no key to run on every node", spec.Tolerations)
	}
	if selector := m.daemonSet.Spec.Selector.MatchLabels; !reflect.DeepEqual(selector, m.daemonSet.Spec.Template.Labels) {
		t.Errorf("selector %v does not match the template labels %v", selector, m.daemonSet.Spec.Template.Labels)
	}

	repository, _, _ := strings.Cut(ctr.Image, ":")
	if repository != imageRepository {
		t.Errorf("image = %q, want %s:TAG, the name make image writes", ctr.Image, imageRepository)
	}
	if ctr.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy = %q, want IfNotPresent for nodes that import the image", ctr.ImagePullPolicy)
	}
	// The plugin serves no port, so nothing may probe one.
	if len(ctr.Ports) != 0 {
		t.Errorf("container ports = %+v, but nri-cni listens on none", ctr.Ports)
	}
	for name, probe := range map[string]*corev1.Probe{
		"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe, "startup": ctr.StartupProbe,
	} {
		if probe != nil && (probe.HTTPGet != nil || probe.TCPSocket != nil || probe.GRPC != nil) {
			t.Errorf("%s probe checks a port, but nri-cni listens on none", name)
		}
	}

	for _, resource := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ctr.Resources.Requests[resource]; !ok {
			t.Errorf("no %s request", resource)
		}
	}
	request, limit := ctr.Resources.Requests[corev1.ResourceMemory], ctr.Resources.Limits[corev1.ResourceMemory]
	if limit.IsZero() || limit.Cmp(request) < 0 {
		t.Errorf("memory limit %s is missing or below the request %s", limit.String(), request.String())
	}
}

func TestDaemonSetSecurityContext(t *testing.T) {
	sc := container(t, loadManifests(t).daemonSet).SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("container has no security context with capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("container is privileged; it needs only the capabilities it adds")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("container does not run as root, so CNI plugins would lose their capabilities at exec")
	}
	if !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	want := []corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}
	got := slices.Clone(sc.Capabilities.Add)
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities.add = %v, want %v", got, want)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem is writable; nri-cni writes only to its host mounts")
	}
	// Kubernetes rejects allowPrivilegeEscalation: false together with
	// CAP_SYS_ADMIN.
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is false, which the API server rejects with SYS_ADMIN")
	}
}

// nriSection is containerd's NRI config (containerd v2.4
// internal/nri/config.go), to decode the snippet strictly. containerd itself
// only warns about unknown keys.
type nriSection struct {
	Disable                   bool   `toml:"disable"`
	SocketPath                string `toml:"socket_path"`
	PluginPath                string `toml:"plugin_path"`
	PluginConfigPath          string `toml:"plugin_config_path"`
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout"`
	PluginRequestTimeout      string `toml:"plugin_request_timeout"`
	DisableConnections        bool   `toml:"disable_connections"`
}

// readSnippet decodes the containerd snippet strictly.
func readSnippet(t *testing.T) (int, nriSection) {
	t.Helper()
	data, err := os.ReadFile(snippetFile)
	if err != nil {
		t.Fatal(err)
	}
	var snippet struct {
		Version int `toml:"version"`
		Plugins struct {
			NRI nriSection `toml:"io.containerd.nri.v1.nri"`
		} `toml:"plugins"`
	}
	decoder := toml.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&snippet); err != nil {
		t.Fatalf("failed to decode %s strictly: %v", snippetFile, err)
	}
	return snippet.Version, snippet.Plugins.NRI
}

func TestContainerdSnippet(t *testing.T) {
	version, nri := readSnippet(t)
	if version != 3 {
		t.Errorf("config version = %d, want 3, the version of containerd 2.x", version)
	}
	if nri.Disable || nri.DisableConnections {
		t.Errorf("disable = %v, disable_connections = %v, want NRI and external plugins allowed",
			nri.Disable, nri.DisableConnections)
	}
	defaults := config.Default()
	if nri.SocketPath != defaults.NRISocket {
		t.Errorf("socket_path = %q, want nri-cni's default nriSocket %q", nri.SocketPath, defaults.NRISocket)
	}
	// The install puts the plugin and its config at NRI's default paths.
	if nri.PluginPath != "/opt/nri/plugins" || nri.PluginConfigPath != "/etc/nri/conf.d" {
		t.Errorf("plugin_path = %q, plugin_config_path = %q, want /opt/nri/plugins and /etc/nri/conf.d",
			nri.PluginPath, nri.PluginConfigPath)
	}

	registration, err := time.ParseDuration(nri.PluginRegistrationTimeout)
	if err != nil || registration <= 0 {
		t.Errorf("plugin_registration_timeout = %q, want a positive duration", nri.PluginRegistrationTimeout)
	}
	request, err := time.ParseDuration(nri.PluginRequestTimeout)
	if err != nil {
		t.Fatalf("plugin_request_timeout = %q is not a duration: %v", nri.PluginRequestTimeout, err)
	}
	// The example network is attached with one ADD, and a pod with two
	// networks must still fit.
	if budget := 2 * time.Duration(defaults.CNITimeout); request <= budget {
		t.Errorf("plugin_request_timeout = %s, want more than two default cniTimeouts (%s)", request, budget)
	}
}

func TestContainerdSnippetComments(t *testing.T) {
	data, err := os.ReadFile(snippetFile)
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^\s*([a-z_]+)\s*=`)
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		m := key.FindStringSubmatch(line)
		if m == nil || m[1] == "version" {
			continue
		}
		// A key shares the comment of the key right above it.
		j := i - 1
		for j >= 0 && key.MatchString(lines[j]) {
			j--
		}
		if j < 0 || !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			t.Errorf("%s line %d: setting %s has no comment with its reason", snippetFile, i+1, m[1])
		}
	}
}
