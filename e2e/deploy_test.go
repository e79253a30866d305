package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/e2e/framework"
	"github.com/nri-cni/nri-cni/internal/ociimage"
)

// Files of the repository that the deploy tests install.
const (
	daemonSetFile = "deploy/kubernetes/daemonset.yaml"
	configMapFile = "deploy/kubernetes/configmap.yaml"
	// imageArchive is what `make image` writes.
	imageArchive = "_output/nri-cni-image.tar"
	// imageBinary is the path of nri-cni inside the image.
	imageBinary = "usr/bin/nri-cni"
)

// criNetNSDir is where the CRI of the test containerd pins pod network
// namespaces: below its state dir, because the framework sets
// netns_mounts_under_state_dir.
func criNetNSDir(env *framework.Env) string {
	return filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "netns")
}

// nodeFolders maps each host path of the DaemonSet to the folder of the test
// environment that takes its place on this node. The container sees each
// folder at its host path, as the DaemonSet mounts each host path at the same
// path, because containerd sends host paths.
func nodeFolders(env *framework.Env) map[string]string {
	return map[string]string{
		"/var/run/nri":       filepath.Join(env.Dir, "nri-run"),
		"/run/containerd":    filepath.Join(env.Dir, "containerd-run"),
		"/var/run/netns":     criNetNSDir(env),
		"/opt/cni/bin":       env.Paths.CNIBin,
		"/etc/nri-cni/net.d": env.NetworkDir,
		"/var/lib/cni":       env.CNICacheDir,
		"/var/lib/nri-cni":   env.StateDir,
		"/run/xtables.lock":  filepath.Join(env.Dir, "xtables.lock"),
	}
}

// readManifest decodes one object of the repository's manifests strictly.
func readManifest(t *testing.T, root, file string, out any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatalf("failed to read %s: %v", file, err)
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("failed to decode %s: %v", file, err)
	}
}

// imageBinaryDigest returns the SHA-256 of the nri-cni binary in the top
// layer of the only image of an OCI archive.
func imageBinaryDigest(t *testing.T, archive string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if output, err := exec.Command("tar", "-xf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("failed to unpack %s: %v: %s", archive, err, output)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("failed to read image layout of %s: %v", archive, err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("%s holds %d images, want 1", archive, len(manifest.Manifests))
	}
	name := manifest.Manifests[0].Annotations[ociimage.AnnotationImageName]

	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("failed to read layers of %s: %v", name, err)
	}

	reader, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	entries := tar.NewReader(reader)
	for {
		header, err := entries.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("top layer of %s has no /%s", name, imageBinary)
		}
		if err != nil {
			t.Fatal(err)
		}
		if header.Name != imageBinary {
			continue
		}
		hash := sha256.New()
		if _, err := io.Copy(hash, entries); err != nil {
			t.Fatal(err)
		}
		return name, fmt.Sprintf("%x", hash.Sum(nil))
	}
}

// loadImage imports the archive of `make image` into the environment's
// containerd and returns the image name. It skips the test when the archive
// is missing, and fails it when the archive holds another binary than
// bin/nri-cni, because the test would then run old code.
func loadImage(t *testing.T, env *framework.Env) string {
	t.Helper()
	archive := filepath.Join(env.Paths.Root, imageArchive)
	if _, err := os.Stat(archive); err != nil {
		t.Skipf("%s is missing: run make image", archive)
	}
	name, digest := imageBinaryDigest(t, archive)
	binary, err := os.ReadFile(env.Paths.NRICNI)
	if err != nil {
		t.Fatalf("failed to read %s: %v; run make build", env.Paths.NRICNI, err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(binary)); digest != want {
		t.Fatalf("the nri-cni of %s differs from %s: run make image", archive, env.Paths.NRICNI)
	}

	cmd := exec.Command(filepath.Join(env.Paths.ToolsBin, "ctr"), "--address", env.ContainerdSocket,
		"--namespace", "k8s.io", "images", "import", archive)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("failed to import %s: %v: %s", archive, err, output)
	}
	return name
}

// prepareNode creates the environment's stand-ins for the DaemonSet's host
// paths as kubelet does for their hostPath types, and links containerd's NRI
// socket into the stand-in of its folder. A hard link reaches the same
// socket, so the container mounts a folder holding only the socket, as the
// DaemonSet does.
func prepareNode(t *testing.T, env *framework.Env, ds *appsv1.DaemonSet) map[string]string {
	t.Helper()
	folders := nodeFolders(env)
	for _, volume := range ds.Spec.Template.Spec.Volumes {
		source := volume.HostPath
		if source == nil {
			continue
		}
		folder, ok := folders[source.Path]
		if !ok || source.Type == nil {
			t.Fatalf("host path %s of volume %s has no type or no stand-in in this test: "+
				"set its type, or add it to nodeFolders", source.Path, volume.Name)
		}
		switch *source.Type {
		case corev1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(folder, 0o755); err != nil {
				t.Fatal(err)
			}
		case corev1.HostPathFileOrCreate:
			file, err := os.OpenFile(folder, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			file.Close()
		case corev1.HostPathDirectory:
			if info, err := os.Stat(folder); err != nil || !info.IsDir() {
				t.Fatalf("host path %s (%s here) must exist as a folder: %v", source.Path, folder, err)
			}
		default:
			t.Fatalf("host path %s has type %s, which this test does not prepare", source.Path, *source.Type)
		}
	}

	for source, link := range map[string]string{
		env.NRISocket:        redirectPath(t, folders, config.Default().NRISocket),
		env.ContainerdSocket: redirectPath(t, folders, config.Default().ContainerdSocket),
	} {
		if err := os.Link(source, link); err != nil {
			t.Fatalf("failed to link socket %s to %s: %v", source, link, err)
		}
	}
	return folders
}

// redirectPath maps a host path of the plugin's config to its stand-in: a
// path equal to or below one of the DaemonSet's host paths.
func redirectPath(t *testing.T, folders map[string]string, hostPath string) string {
	t.Helper()
	for node, folder := range folders {
		if hostPath == node {
			return folder
		}
		if rest, ok := strings.CutPrefix(hostPath, node+"/"); ok {
			return filepath.Join(folder, rest)
		}
	}
	t.Fatalf("config path %s is not below a host path of the DaemonSet", hostPath)
	return ""
}

// writeConfigMap writes the ConfigMap's files into a folder that takes the
// place of the ConfigMap volume, with every host path of the config redirected.
func writeConfigMap(t *testing.T, env *framework.Env, configMap *corev1.ConfigMap, folders map[string]string) string {
	t.Helper()
	dir := filepath.Join(env.Dir, "configmap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, value := range configMap.Data {
		var settings map[string]any
		if err := yaml.Unmarshal([]byte(value), &settings); err != nil {
			t.Fatalf("failed to decode ConfigMap key %s: %v", key, err)
		}
		for _, name := range []string{"nriSocket", "containerdSocket", "cniConfDir", "cniCacheDir", "stateDir"} {
			if text, ok := settings[name].(string); ok {
				settings[name] = redirectPath(t, folders, text)
			}
		}
		if dirs, ok := settings["cniBinDirs"].([]any); ok {
			for i, dir := range dirs {
				dirs[i] = redirectPath(t, folders, dir.(string))
			}
		}
		content, err := yaml.Marshal(settings)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse(content, "redirected ConfigMap"); err != nil {
			t.Fatalf("redirected ConfigMap config is invalid: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, key), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// containerMounts translates the DaemonSet container's volume mounts into
// CRI mounts, as kubelet does: hostPath volumes from their stand-ins, the
// ConfigMap volume from configDir.
func containerMounts(t *testing.T, ds *appsv1.DaemonSet, folders map[string]string, configDir string) []*runtimeapi.Mount {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, volume := range ds.Spec.Template.Spec.Volumes {
		volumes[volume.Name] = volume
	}
	var mounts []*runtimeapi.Mount
	for _, mount := range ds.Spec.Template.Spec.Containers[0].VolumeMounts {
		volume := volumes[mount.Name]
		criMount := &runtimeapi.Mount{Readonly: mount.ReadOnly}
		switch {
		case volume.HostPath != nil:
			criMount.HostPath = folders[volume.HostPath.Path]
			criMount.ContainerPath = redirectPath(t, folders, path.Clean(mount.MountPath))
		case volume.ConfigMap != nil:
			criMount.HostPath = configDir
			criMount.ContainerPath = mount.MountPath
		default:
			t.Fatalf("volume %s is neither hostPath nor configMap, which this test does not translate", mount.Name)
		}
		if mount.MountPropagation != nil {
			switch *mount.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				criMount.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				criMount.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		mounts = append(mounts, criMount)
	}
	return mounts
}

// maskedPaths and readonlyPaths are the masked and read-only paths of containerd's default OCI
// spec (pkg/oci/spec.go, containerd v2.4.2), without its per-CPU thermal
// throttle entries. Kubernetes documents its
// default procMount as the runtime's defaults, and the CRI applies only the
// lists it is sent, so they are sent here as kubelet sends its own.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// daemonSetConfigs translates the DaemonSet's pod template into the CRI
// configs that kubelet would send for it.
func daemonSetConfigs(t *testing.T, env *framework.Env, ds *appsv1.DaemonSet, image string,
	mounts []*runtimeapi.Mount) (*runtimeapi.PodSandboxConfig, *runtimeapi.ContainerConfig) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	ctr := spec.Containers[0]
	namespaces := &runtimeapi.NamespaceOption{}
	if spec.HostNetwork {
		namespaces.Network = runtimeapi.NamespaceMode_NODE
	}
	if spec.HostPID {
		namespaces.Pid = runtimeapi.NamespaceMode_NODE
	}

	pod := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: ds.Name + "-node", Namespace: ds.Namespace, Uid: "daemonset-" + filepath.Base(env.Dir),
		},
		Labels:       ds.Spec.Template.Labels,
		LogDirectory: filepath.Join(env.Dir, "logs", "pods", ds.Name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			// The environment's cgroup parent, which its cleanup removes.
			CgroupParent:    env.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaces},
		},
	}

	sc := ctr.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("container %s has no security context with capabilities", ctr.Name)
	}
	security := &runtimeapi.LinuxContainerSecurityContext{
		Capabilities: &runtimeapi.Capability{},
		// A nil Privileged pointer means false, as in Kubernetes.
		Privileged:       sc.Privileged != nil && *sc.Privileged,
		NamespaceOptions: namespaces,
		ReadonlyRootfs:   sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		MaskedPaths:      maskedPaths,
		ReadonlyPaths:    readonlyPaths,
	}
	for _, capability := range sc.Capabilities.Add {
		security.Capabilities.AddCapabilities = append(security.Capabilities.AddCapabilities, string(capability))
	}
	for _, capability := range sc.Capabilities.Drop {
		security.Capabilities.DropCapabilities = append(security.Capabilities.DropCapabilities, string(capability))
	}
	if sc.RunAsUser != nil {
		security.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault {
		security.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}

	// kubelet turns the CPU request into shares (1024 per CPU, at least 2)
	// and the memory limit into the cgroup limit.
	cpuShares := max(ctr.Resources.Requests.Cpu().MilliValue()*1024/1000, 2)
	container := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: ctr.Name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  ctr.Command,
		Args:     ctr.Args,
		Mounts:   mounts,
		LogPath:  ctr.Name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuShares:          cpuShares,
				MemoryLimitInBytes: ctr.Resources.Limits.Memory().Value(),
			},
			SecurityContext: security,
		},
	}
	return pod, container
}

func writeJSON(t *testing.T, file string, value any) {
	t.Helper()
	content, err := json.MarshalIndent(value, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// containerLog returns the messages of a CRI container log file, whose lines
// are "<time> <stream> <tag> <message>".
func containerLog(file string) string {
	content, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	var messages strings.Builder
	scanner := bufio.NewScanner(bytes.NewReader(content))
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		fields := strings.SplitN(scanner.Text(), " ", 4)
		if len(fields) == 4 {
			messages.WriteString(fields[3])
			messages.WriteString("\n")
		}
	}
	return messages.String()
}

// daemonSetPod is nri-cni running as the DaemonSet's pod on the node.
type daemonSetPod struct {
	podID       string
	containerID string
	logFile     string
	pid         int
}

// runDaemonSetPod starts the DaemonSet's pod through the CRI and waits until
// nri-cni logs that it connected.
func runDaemonSetPod(t *testing.T, env *framework.Env, pod *runtimeapi.PodSandboxConfig,
	container *runtimeapi.ContainerConfig) *daemonSetPod {
	t.Helper()
	dir := filepath.Join(env.Dir, "daemonset")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	podFile, containerFile := filepath.Join(dir, "pod.json"), filepath.Join(dir, "container.json")
	writeJSON(t, podFile, pod)
	writeJSON(t, containerFile, container)

	output, err := env.Crictl("runp", podFile)
	if err != nil {
		t.Fatalf("failed to run the DaemonSet's pod: %v", err)
	}
	result := &daemonSetPod{
		podID:   strings.TrimSpace(output),
		logFile: filepath.Join(pod.LogDirectory, container.LogPath),
	}
	if output, err = env.Crictl("create", result.podID, containerFile, podFile); err != nil {
		t.Fatalf("failed to create the nri-cni container: %v", err)
	}
	result.containerID = strings.TrimSpace(output)
	if err := env.StartContainer(result.containerID); err != nil {
		t.Fatalf("failed to start the nri-cni container: %v", err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for len(framework.LogEntries(containerLog(result.logFile), "connected")) == 0 {
		status, err := env.InspectContainer(result.containerID)
		if err != nil {
			t.Fatal(err)
		}
		if status.State != "CONTAINER_RUNNING" || time.Now().After(deadline) {
			t.Fatalf("nri-cni in the DaemonSet's pod did not connect (state %s):\n%s",
				status.State, containerLog(result.logFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
	status, err := env.InspectContainer(result.containerID)
	if err != nil {
		t.Fatal(err)
	}
	result.pid = status.PID
	return result
}

// cacheLeases returns the addresses host-local holds in network, in its default
// data dir below the libcni cache dir.
func cacheLeases(t *testing.T, cacheDir, network string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cacheDir, "networks", network))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var addresses []string
	for _, entry := range entries {
		if _, err := netip.ParseAddr(entry.Name()); err == nil {
			addresses = append(addresses, entry.Name())
		}
	}
	return addresses
}

// interfaceAddress returns the IPv4 address of ifName in a container.
func interfaceAddress(t *testing.T, env *framework.Env, containerID, ifName string) netip.Addr {
	t.Helper()
	output, err := env.Exec(containerID, "ip", "-o", "-4", "addr", "show", "dev", ifName)
	if err != nil {
		t.Fatalf("pod has no %s: %v", ifName, err)
	}
	fields := strings.Fields(output)
	for i, field := range fields {
		if field == "inet" && i+1 < len(fields) {
			prefix, err := netip.ParsePrefix(fields[i+1])
			if err != nil {
				t.Fatalf("failed to parse address of %s in %q: %v", ifName, output, err)
			}
			return prefix.Addr()
		}
	}
	t.Fatalf("%s has no IPv4 address: %q", ifName, output)
	return netip.Addr{}
}

// processStatus returns fields of /proc/<pid>/status.
func processStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	content, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("failed to read status of nri-cni (PID %d): %v", pid, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(content), "\n") {
		if key, value, ok := strings.Cut(line, ":"); ok {
			fields[key] = strings.TrimSpace(value)
		}
	}
	return fields
}

// capabilityBits are the Linux capability numbers of the names the
// DaemonSet may add (linux/capability.h).
var capabilityBits = map[string]uint{
	"NET_ADMIN": 12, "NET_RAW": 13, "SYS_PTRACE": 19, "SYS_ADMIN": 21,
}

// cgroupValue returns a number from file of the cgroup v1 controller of a
// process, or 0 when the host has no such controller.
func cgroupValue(t *testing.T, pid int, controller, file string) int64 {
	t.Helper()
	content, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(content), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !slices.Contains(strings.Split(parts[1], ","), controller) {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], file))
		if err != nil {
			return 0
		}
		value, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return value
	}
	return 0
}

// daemonSetNetwork is the network of TestDaemonSetPod, with name, bridge and
// subnet to fill in. Its dataDir is the stand-in of host-local's default,
// /var/lib/cni/networks, which is below the DaemonSet's /var/lib/cni mount.
// It has no isGateway, with which the bridge plugin turns on
// net.ipv4.ip_forward when it is off: the container cannot write that
// through its read-only /proc/sys, and other test environments on this
// machine restore it to off while this test runs. Kubernetes nodes have it on.
const daemonSetNetwork = `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "ipMasq": false,
      "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s"}]]}
    }
  ]
}
`

// TestDaemonSetPod runs the image of `make image` as the DaemonSet's pod,
// with its host mounts, host network, host PID and security context, and
// checks that pods started after it get net1 and that stopping them frees
// their leases.
func TestDaemonSetPod(t *testing.T) {
	env := framework.New(t)
	image := loadImage(t, env)

	var ds appsv1.DaemonSet
	readManifest(t, env.Paths.Root, daemonSetFile, &ds)
	var configMap corev1.ConfigMap
	readManifest(t, env.Paths.Root, configMapFile, &configMap)
	if want, _, _ := strings.Cut(ds.Spec.Template.Spec.Containers[0].Image, ":"); !strings.HasPrefix(image, want+":") {
		t.Fatalf("make image writes %s, but the DaemonSet runs %s", image, ds.Spec.Template.Spec.Containers[0].Image)
	}

	folders := prepareNode(t, env, &ds)
	configDir := writeConfigMap(t, env, &configMap, folders)
	mounts := containerMounts(t, &ds, folders, configDir)
	podConfig, containerConfig := daemonSetConfigs(t, env, &ds, image, mounts)

	network := framework.Network{Name: "data", Bridge: env.Bridge("data"), Subnet: env.Subnet(1)}
	env.WriteNetworkFile("10-data.conflist", []byte(fmt.Sprintf(daemonSetNetwork,
		network.Name, network.Bridge, filepath.Join(env.CNICacheDir, "networks"), network.Subnet)))

	plugin := runDaemonSetPod(t, env, podConfig, containerConfig)
	t.Logf("nri-cni runs in the DaemonSet's pod %s as PID %d", plugin.podID, plugin.pid)

	// The capabilities are exactly those of the DaemonSet.
	var want uint64
	for _, capability := range containerConfig.Linux.SecurityContext.Capabilities.AddCapabilities {
		bit, ok := capabilityBits[capability]
		if !ok {
			t.Fatalf("capability %s of the DaemonSet has no bit in capabilityBits", capability)
		}
		want |= 1 << bit
	}
	status := processStatus(t, plugin.pid)
	if got, err := strconv.ParseUint(status["CapEff"], 16, 64); err != nil || got != want {
		t.Errorf("nri-cni runs with capabilities %s, want %016x", status["CapEff"], want)
	}

	// The image has what CNI plugins exec for ipMasq and portmap.
	for _, command := range [][]string{{"iptables", "--version"}, {"ip6tables", "--version"}, {"nft", "--version"}} {
		if output, err := env.Exec(plugin.containerID, command...); err != nil {
			t.Errorf("%s in the nri-cni image failed: %v", command[0], err)
		} else {
			t.Logf("image: %s", strings.TrimSpace(output))
		}
	}

	const pods = 5
	for i := range pods {
		pod := env.MustRunPod(framework.PodConfig{
			Annotations: map[string]string{config.NetworksAnnotation: network.Name},
		})
		podStatus, err := env.InspectPod(pod.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dir := filepath.Dir(podStatus.NetnsPath); dir != criNetNSDir(env) {
			t.Fatalf("pod netns %s is not in %s, which the test mounts for /var/run/netns",
				podStatus.NetnsPath, criNetNSDir(env))
		}
		member := env.MustRunContainer(pod, framework.ContainerConfig{Command: []string{"sleep", "3600"}})
		address := interfaceAddress(t, env, member, "net1")
		if !network.Subnet.Contains(address) {
			t.Errorf("pod %d: net1 has %s, want an address in %s", i, address, network.Subnet)
		}
		if got := cacheLeases(t, env.CNICacheDir, network.Name); len(got) != 1 || got[0] != address.String() {
			t.Errorf("pod %d: host-local leases = %v, want [%s]", i, got, address)
		}

		if err := env.StopPod(pod.ID); err != nil {
			t.Fatal(err)
		}
		if err := env.RemovePod(pod.ID); err != nil {
			t.Fatal(err)
		}
		if got := cacheLeases(t, env.CNICacheDir, network.Name); len(got) != 0 {
			t.Errorf("pod %d: leases %v remain after the pod was removed", i, got)
		}
		if files, err := env.StateFiles(); err != nil || len(files) != 0 {
			t.Errorf("pod %d: state files %v remain after the pod was removed (%v)", i, files, err)
		}
	}

	log := containerLog(plugin.logFile)
	if attached := framework.LogEntries(log, "attached network"); len(attached) != pods {
		t.Errorf("nri-cni logged %d \"attached network\", want %d:\n%s", len(attached), pods, log)
	}
	if detached := framework.LogEntries(log, "detached network"); len(detached) != pods {
		t.Errorf("nri-cni logged %d \"detached network\", want %d", len(detached), pods)
	}

	// The measurement behind the DaemonSet's resources.
	// The container's cgroup also counts the CNI plugins that nri-cni runs.
	status = processStatus(t, plugin.pid)
	peak := cgroupValue(t, plugin.pid, "memory", "memory.max_usage_in_bytes")
	cpu := time.Duration(cgroupValue(t, plugin.pid, "cpuacct", "cpuacct.usage"))
	t.Logf("nri-cni after %d pods: VmRSS %s, VmHWM %s; container cgroup: memory peak %d KiB "+
		"(limit %d KiB), CPU time %s", pods, status["VmRSS"], status["VmHWM"], peak/1024,
		containerConfig.Linux.Resources.MemoryLimitInBytes/1024, cpu.Round(time.Millisecond))

	// kubelet stops a container with SIGTERM and the pod's grace period.
	grace := strconv.FormatInt(*ds.Spec.Template.Spec.TerminationGracePeriodSeconds, 10)
	if _, err := env.Crictl("stop", "--timeout", grace, plugin.containerID); err != nil {
		t.Fatal(err)
	}
	output, err := env.Crictl("inspect", "--output", "json", plugin.containerID)
	if err != nil {
		t.Fatal(err)
	}
	var stopped struct {
		Status struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(output), &stopped); err != nil {
		t.Fatal(err)
	}
	if stopped.Status.ExitCode != 0 {
		t.Errorf("nri-cni exited with %d (%s) after SIGTERM, want 0:\n%s",
			stopped.Status.ExitCode, stopped.Status.Reason, containerLog(plugin.logFile))
	}
	if err := syscall.Kill(plugin.pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nri-cni (PID %d) still runs after its container stopped", plugin.pid)
	}
}

// Paths of the pre-installed layout that `make install` writes below PREFIX,
// and the shipped files that it copies there.
const (
	installedPlugin  = "opt/nri/plugins/10-nri-cni"
	installedConfig  = "etc/nri/conf.d/10-nri-cni.conf"
	installedSnippet = "etc/containerd/conf.d/nri-cni.toml"
	installedNetDir  = "etc/nri-cni/net.d"
	shippedSnippet   = "deploy/containerd/nri-cni.toml"
	shippedConfig    = "deploy/nri-cni.yaml"
)

// runMake runs a make target of the repository with PREFIX.
func runMake(t *testing.T, root, target, prefix string) {
	t.Helper()
	cmd := exec.Command("make", target, "PREFIX="+prefix)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s PREFIX=%s failed: %v: %s", target, prefix, err, output)
	}
}

// sameContent fails the test when two files differ.
func sameContent(t *testing.T, got, want string) {
	t.Helper()
	gotData, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("make install wrote no %s: %v", got, err)
	}
	wantData, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotData, wantData) {
		t.Errorf("make install wrote %s, which differs from %s", got, want)
	}
}

// nriSettings are the NRI settings of a containerd config, in the keys the
// snippet sets.
type nriSettings struct {
	Disable                   bool   `toml:"disable"`
	SocketPath                string `toml:"socket_path"`
	PluginPath                string `toml:"plugin_path"`
	PluginConfigPath          string `toml:"plugin_config_path"`
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout"`
	PluginRequestTimeout      string `toml:"plugin_request_timeout"`
	DisableConnections        bool   `toml:"disable_connections"`
}

// readNRISettings decodes the NRI section of a containerd config.
func readNRISettings(t *testing.T, source string, data []byte) nriSettings {
	t.Helper()
	var config struct {
		Plugins struct {
			NRI *nriSettings `toml:"io.containerd.nri.v1.nri"`
		} `toml:"plugins"`
	}
	if err := toml.Unmarshal(data, &config); err != nil {
		t.Fatalf("failed to decode %s: %v", source, err)
	}
	if config.Plugins.NRI == nil {
		t.Fatalf("%s has no io.containerd.nri.v1.nri section", source)
	}
	return *config.Plugins.NRI
}

// pluginProcesses returns the PIDs of processes that run the executable at
// path, also after the file was deleted.
func pluginProcesses(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", entry.Name(), "exe"))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitForPlugin waits until one process runs the executable at path and
// returns its PID.
func waitForPlugin(t *testing.T, path string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := pluginProcesses(t, path)
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd runs %d processes of %s after %s, want 1", len(pids), path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processEnviron returns the environment a process was started with.
func processEnviron(t *testing.T, pid int) []string {
	t.Helper()
	content, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(content), "\x00"), "\x00")
}

// TestPreinstalledPlugin installs nri-cni with `make install` and has
// containerd start it from its plugin path with the installed config, as
// the pre-installed mode runs on a node. A pod then gets net1, and stopping
// it frees the lease. After `make uninstall` and a containerd restart no
// nri-cni runs.
func TestPreinstalledPlugin(t *testing.T) {
	// Registered before the environment, so it runs after the environment's
	// cleanup has stopped containerd: a plugin left by a failed test is
	// killed by its PID.
	var pluginFile string
	t.Cleanup(func() {
		if pluginFile == "" {
			return
		}
		for _, pid := range pluginProcesses(t, pluginFile) {
			t.Logf("killing nri-cni (PID %d) left after containerd stopped", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	env := framework.New(t)
	env.StopContainerd()

	prefix := filepath.Join(env.Dir, "prefix")
	runMake(t, env.Paths.Root, "install", prefix)
	pluginFile = filepath.Join(prefix, installedPlugin)
	sameContent(t, pluginFile, env.Paths.NRICNI)
	sameContent(t, filepath.Join(prefix, installedConfig), filepath.Join(env.Paths.Root, shippedConfig))
	sameContent(t, filepath.Join(prefix, installedSnippet), filepath.Join(env.Paths.Root, shippedSnippet))
	if info, err := os.Stat(pluginFile); err != nil || info.Mode().Perm()&0o111 == 0 {
		t.Fatalf("installed plugin %s is not executable: %v", pluginFile, err)
	}
	if info, err := os.Stat(filepath.Join(prefix, installedNetDir)); err != nil || !info.IsDir() {
		t.Errorf("make install created no %s: %v", installedNetDir, err)
	}

	// The environment's containerd reads plugins and their configs from
	// these folders, which become links to the installed folders.
	for link, target := range map[string]string{
		filepath.Join(env.Dir, "nri", "plugins"): filepath.Dir(pluginFile),
		filepath.Join(env.Dir, "nri", "conf.d"):  filepath.Join(prefix, filepath.Dir(installedConfig)),
	} {
		if err := os.Remove(link); err != nil {
			t.Fatalf("failed to replace %s with a link: %v", link, err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}

	// The environment writes its own containerd config, so the installed
	// snippet is not imported as a file. Its settings, with the three paths
	// redirected as above, must be exactly those that containerd runs with.
	snippetData, err := os.ReadFile(filepath.Join(prefix, installedSnippet))
	if err != nil {
		t.Fatal(err)
	}
	want := readNRISettings(t, installedSnippet, snippetData)
	want.SocketPath = env.NRISocket
	want.PluginPath = filepath.Join(env.Dir, "nri", "plugins")
	want.PluginConfigPath = filepath.Join(env.Dir, "nri", "conf.d")
	dump, err := exec.Command(filepath.Join(env.Paths.ToolsBin, "containerd"),
		"--config", filepath.Join(env.Dir, "containerd.toml"), "config", "dump").Output()
	if err != nil {
		t.Fatalf("containerd config dump failed: %v", err)
	}
	if got := readNRISettings(t, "containerd config dump", dump); got != want {
		t.Fatalf("containerd runs with NRI settings %+v, want those of %s with redirected paths %+v",
			got, shippedSnippet, want)
	}

	// An operator points the installed config at the node's folders; here
	// those are the environment's.
	configFile := filepath.Join(prefix, installedConfig)
	configData, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(configData, &settings); err != nil {
		t.Fatal(err)
	}
	settings["cniConfDir"] = env.NetworkDir
	settings["cniBinDirs"] = []string{env.Paths.CNIBin}
	settings["cniCacheDir"] = env.CNICacheDir
	settings["stateDir"] = env.StateDir
	settings["containerdSocket"] = env.ContainerdSocket
	configData, err = yaml.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configFile, configData, 0o644); err != nil {
		t.Fatal(err)
	}

	network := framework.Network{Name: "data", Bridge: env.Bridge("data"), Subnet: env.Subnet(1)}
	env.WriteNetwork(network)

	env.StartContainerd()
	resolvedPlugin, err := filepath.EvalSymlinks(pluginFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := waitForPlugin(t, resolvedPlugin, 10*time.Second)
	environ := processEnviron(t, pid)
	for _, variable := range []string{"NRI_PLUGIN_NAME=nri-cni", "NRI_PLUGIN_IDX=10", "NRI_PLUGIN_SOCKET=3"} {
		if !slices.Contains(environ, variable) {
			t.Errorf("nri-cni (PID %d) was started with environment %q, want %s from containerd",
				pid, environ, variable)
		}
	}
	// The install docs say that a pre-installed plugin's logs are lost.
	if stderr, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); err != nil || stderr != os.DevNull {
		t.Errorf("nri-cni's stderr is %q (%v), want %s as containerd v2.4 sets it", stderr, err, os.DevNull)
	}
	t.Logf("containerd started %s as PID %d", pluginFile, pid)

	pod := env.MustRunPod(framework.PodConfig{
		Annotations: map[string]string{config.NetworksAnnotation: network.Name},
	})
	member := env.MustRunContainer(pod, framework.ContainerConfig{Command: []string{"sleep", "3600"}})
	address := interfaceAddress(t, env, member, "net1")
	if !network.Subnet.Contains(address) {
		t.Errorf("net1 has %s, want an address in %s", address, network.Subnet)
	}
	if got, err := env.Leases(network.Name); err != nil || len(got) != 1 || got[0] != address.String() {
		t.Errorf("host-local leases = %v (%v), want [%s]", got, err, address)
	}
	if err := env.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.RemovePod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Leases(network.Name); err != nil || len(got) != 0 {
		t.Errorf("leases %v (%v) remain after the pod was removed", got, err)
	}
	if files, err := env.StateFiles(); err != nil || len(files) != 0 {
		t.Errorf("state files %v (%v) remain after the pod was removed", files, err)
	}

	runMake(t, env.Paths.Root, "uninstall", prefix)
	for _, file := range []string{installedPlugin, installedConfig, installedSnippet, installedNetDir} {
		if _, err := os.Lstat(filepath.Join(prefix, file)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("make uninstall left %s (%v)", file, err)
		}
	}

	// The plugin exits when its connection to containerd closes, and the
	// restarted containerd finds no plugin to start.
	env.StopContainerd()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nri-cni (PID %d) still runs 5s after containerd stopped", pid)
	}
	env.StartContainerd()
	if pids := pluginProcesses(t, resolvedPlugin); len(pids) != 0 {
		t.Errorf("containerd started nri-cni again after make uninstall: PIDs %v", pids)
	}
}
