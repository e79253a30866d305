package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/nri-cni/nri-cni/e2e/images"
)

// NRIRequestTimeout is containerd's plugin_request_timeout in an
// environment. It stays above the CNI timeouts that tests give nri-cni, so a
// slow ADD fails the pod instead of disconnecting the plugin.
const NRIRequestTimeout = 30 * time.Second

// containerdConfig is containerd's configuration, version 3, which
// containerd 2.4 migrates in memory. Every path is inside the environment's
// folder, and imports is empty, so nothing from /etc/containerd applies.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 3
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
temp = "{{.Dir}}/tmp"
imports = []
disabled_plugins = [
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.mount-handler.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{{.Socket}}"

[ttrpc]
  address = "{{.Socket}}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{{.Dir}}/image-verifier"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "{{.Dir}}/s"

[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "{{.NRISocket}}"
  plugin_path = "{{.Dir}}/nri/plugins"
  plugin_config_path = "{{.Dir}}/nri/conf.d"
  plugin_request_timeout = "{{.NRIRequestTimeout}}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{{.PauseImage}}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  cdi_spec_dirs = ["{{.Dir}}/cdi"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{{.ToolsBin}}/runc"
        Root = "{{.Dir}}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{{.CNIBin}}"]
    conf_dir = "{{.CRIConfDir}}"
    max_conf_num = {{.MaxConfNum}}
`))

// criNetwork is the CRI's own network for eth0. It has no routes, so pods
// send nothing past their subnet.
var criNetwork = template.Must(template.New("cri-network").Parse(`{
  "cniVersion": "1.0.0",
  "name": "{{.Name}}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "{{.Bridge}}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "{{.IPAMDir}}",
        "ranges": [[{"subnet": "{{.Subnet}}"}]]
      }
    }
  ]
}
`))

// CRINetworkName is the name of the CRI's eth0 network in every environment.
const CRINetworkName = "cri-eth0"

func (env *Env) writeContainerdConfig() (string, error) {
	for _, dir := range []string{"root", "state", "tmp", "opt", "runc", "s", "nri/plugins", "nri/conf.d", "cri-net.d", "ipam", "var-lib", "logs"} {
		if err := os.MkdirAll(filepath.Join(env.Dir, dir), 0o755); err != nil {
			return "", fmt.Errorf("failed to create %s in environment folder: %w", dir, err)
		}
	}

	values := map[string]string{
		"Dir":               env.Dir,
		"Socket":            env.ContainerdSocket,
		"NRISocket":         env.NRISocket,
		"NRIRequestTimeout": NRIRequestTimeout.String(),
		"PauseImage":        images.PauseImage,
		"ToolsBin":          env.Paths.ToolsBin,
		"CNIBin":            env.Paths.CNIBin,
		"CRIConfDir":        filepath.Join(env.Dir, "cri-net.d"),
		"Name":              CRINetworkName,
		"Bridge":            env.CRIBridge,
		"IPAMDir":           env.IPAMDir,
		"Subnet":            env.CRISubnet.String(),
	}

	var network strings.Builder
	if err := criNetwork.Execute(&network, values); err != nil {
		return "", fmt.Errorf("failed to render CRI network: %w", err)
	}
	if err := os.WriteFile(filepath.Join(env.Dir, "cri-net.d", "10-"+CRINetworkName+".conflist"), []byte(network.String()), 0o644); err != nil {
		return "", fmt.Errorf("failed to write CRI network: %w", err)
	}
	maxConfNum, err := env.writeCRINetworks(values["CRIConfDir"])
	if err != nil {
		return "", err
	}
	values["MaxConfNum"] = strconv.Itoa(maxConfNum)

	var config strings.Builder
	if err := containerdConfig.Execute(&config, values); err != nil {
		return "", fmt.Errorf("failed to render containerd config: %w", err)
	}
	configPath := filepath.Join(env.Dir, "containerd.toml")
	if err := os.WriteFile(configPath, []byte(config.String()), 0o644); err != nil {
		return "", fmt.Errorf("failed to write containerd config: %w", err)
	}
	return configPath, nil
}

// containerdLauncher runs containerd in a mount namespace of its own. The
// CRI calls libcni without a cache dir, and libcni then writes to
// /var/lib/cni, so the launcher mounts the environment's var-lib folder over
// /var/lib in that namespace. The environment folder is a shared mount, so
// the network namespaces that containerd pins below it still appear in the
// host's mount namespace, where nri-cni and the tests open them.
//
// The folders of the environments started before this one are shared mounts
// too, and the new namespace copies them. As members of their peer groups,
// the copies would receive every mount of those environments' pods. A
// containerd started later then had ever larger mount tables, and its pods
// started and stopped slower than those of earlier environments, more so
// with many pods running. The launcher makes those copies private, which
// only takes them out of the groups.
const containerdLauncher = `set -e
mount --make-private /
own=$1
awk '$5 ~ /^\/tmp\/nce[0-9]+-[0-9]+$/ { print $5 }' /proc/self/mountinfo | while read -r dir; do
	if [ "$dir" != "$own" ]; then
		mount --make-rprivate "$dir"
	fi
done
mount --bind "$2" /var/lib
shift 2
exec "$@"`

// startContainerd starts containerd and waits until its CRI reports ready.
func (env *Env) startContainerd() error {
	configPath, err := env.writeContainerdConfig()
	if err != nil {
		return err
	}

	start := time.Now()
	processEnv := []string{
		"PATH=" + env.Paths.ToolsBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + env.Dir,
		"TMPDIR=" + filepath.Join(env.Dir, "tmp"),
	}
	process, err := startProcess("containerd", filepath.Join(env.Dir, "logs", "containerd.log"), processEnv,
		"unshare", "--mount", "--propagation", "unchanged", "--",
		"/bin/sh", "-c", containerdLauncher, "containerd-launcher", env.Dir,
		filepath.Join(env.Dir, "var-lib"),
		filepath.Join(env.Paths.ToolsBin, "containerd"), "--config", configPath)
	if err != nil {
		return err
	}
	env.containerd = process

	if err := env.waitForCRI(15 * time.Second); err != nil {
		return err
	}
	env.ContainerdStartTime = time.Since(start)
	env.t.Logf("containerd (PID %d) ready in %s", process.PID(), env.ContainerdStartTime.Round(time.Millisecond))
	return nil
}

// waitForCRI polls `crictl info` until the CRI reports the conditions
// RuntimeReady and NetworkReady.
func (env *Env) waitForCRI(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if env.containerd.Exited() {
			return fmt.Errorf("containerd exited during start-up:\n%s", env.containerd.logTail(30))
		}
		if _, err := os.Stat(env.ContainerdSocket); err == nil {
			lastErr = env.criReady()
			if lastErr == nil {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not become ready within %s: %v\n%s", timeout, lastErr, env.containerd.logTail(30))
}

func (env *Env) criReady() error {
	output, err := env.crictlOutput(context.Background(), "info")
	if err != nil {
		return err
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type    string `json:"type"`
				Status  bool   `json:"status"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(output), &info); err != nil {
		return fmt.Errorf("failed to parse crictl info output: %w", err)
	}
	ready := map[string]bool{}
	for _, condition := range info.Status.Conditions {
		ready[condition.Type] = condition.Status
		// Other conditions, such as the cgroup v1 deprecation warning, do
		// not stop pods from running.
		if condition.Type != "RuntimeReady" && condition.Type != "NetworkReady" {
			continue
		}
		if !condition.Status {
			return fmt.Errorf("CRI condition %s is false: %s %s", condition.Type, condition.Reason, condition.Message)
		}
	}
	if !ready["RuntimeReady"] || !ready["NetworkReady"] {
		return fmt.Errorf("CRI reports no RuntimeReady and NetworkReady conditions yet")
	}
	return nil
}

// importImages imports the pause and tools images into the k8s.io namespace
// in parallel.
func (env *Env) importImages() error {
	start := time.Now()
	archives := []string{images.PauseArchive, images.ToolsArchive}
	errs := make([]error, len(archives))
	var wait sync.WaitGroup
	for i, archive := range archives {
		wait.Add(1)
		go func() {
			defer wait.Done()
			path := filepath.Join(env.Paths.Images, archive)
			cmd := exec.Command(filepath.Join(env.Paths.ToolsBin, "ctr"),
				"--address", env.ContainerdSocket, "--namespace", "k8s.io",
				"images", "import", path)
			if output, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("failed to import %s with ctr: %w: %s", path, err, strings.TrimSpace(string(output)))
			}
		}()
	}
	wait.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	env.t.Logf("images imported in %s", time.Since(start).Round(time.Millisecond))
	return nil
}
