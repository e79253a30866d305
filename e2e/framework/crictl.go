package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nri-cni/nri-cni/e2e/images"
)

// crictlTimeout bounds one CRI request. RunPodSandbox waits for NRI plugins,
// so it stays above NRIRequestTimeout.
const crictlTimeout = NRIRequestTimeout + 30*time.Second

// CrictlError is a failed crictl command with what it wrote.
type CrictlError struct {
	Args   []string
	Stdout string
	Stderr string
	Err    error
}

func (e *CrictlError) Error() string {
	return fmt.Sprintf("crictl %s failed: %v: %s%s", strings.Join(e.Args, " "), e.Err,
		strings.TrimSpace(e.Stderr), strings.TrimSpace(e.Stdout))
}

func (e *CrictlError) Unwrap() error {
	return e.Err
}

// Crictl runs crictl against the environment's containerd and returns its
// stdout. A failure is a *CrictlError.
func (env *Env) Crictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), crictlTimeout+10*time.Second)
	defer cancel()
	start := time.Now()
	output, err := env.crictlOutput(ctx, args...)
	env.t.Logf("crictl %s (%s)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return output, err
}

func (env *Env) crictlOutput(ctx context.Context, args ...string) (string, error) {
	fullArgs := append([]string{"--config", env.crictlConfig}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(env.Paths.ToolsBin, "crictl"), fullArgs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CrictlError{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

func (env *Env) writeCrictlConfig() error {
	env.crictlConfig = filepath.Join(env.Dir, "crictl.yaml")
	endpoint := "unix://" + env.ContainerdSocket
	config := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: %d\ndebug: false\npull-image-on-create: false\n",
		endpoint, endpoint, int(crictlTimeout.Seconds()))
	if err := os.WriteFile(env.crictlConfig, []byte(config), 0o644); err != nil {
		return fmt.Errorf("failed to write crictl config: %w", err)
	}
	return nil
}

// PodConfig is the part of a CRI PodSandboxConfig that the tests set.
type PodConfig struct {
	// Name is the pod name. Empty means a name unique in the environment.
	Name string
	// Namespace is the pod namespace. Empty means "default".
	Namespace string
	// UID is the pod UID. Empty means one derived from the name.
	UID         string
	Labels      map[string]string
	Annotations map[string]string
	// HostNetwork puts the pod in the host network namespace.
	HostNetwork bool
	// Sysctls are set in the pod's namespaces when its pause task starts.
	Sysctls map[string]string
}

// Pod is a pod sandbox that RunPod created.
type Pod struct {
	ID         string
	Config     PodConfig
	configPath string
}

// namespaceModeNode is runtime.v1.NamespaceMode NODE, the host namespace.
const namespaceModeNode = 2

func (env *Env) writePodConfig(config *PodConfig) (string, error) {
	sequence := env.nextSequence()
	if config.Name == "" {
		config.Name = fmt.Sprintf("pod-%d", sequence)
	}
	if config.Namespace == "" {
		config.Namespace = "default"
	}
	if config.UID == "" {
		config.UID = fmt.Sprintf("uid-%s-%d-%d", config.Name, env.block.index, sequence)
	}

	namespaceOptions := map[string]any{}
	if config.HostNetwork {
		namespaceOptions["network"] = namespaceModeNode
	}
	podJSON := map[string]any{
		"metadata": map[string]any{
			"name":      config.Name,
			"namespace": config.Namespace,
			"uid":       config.UID,
			"attempt":   0,
		},
		"log_directory": filepath.Join(env.Dir, "logs", "pods", config.Name),
		"labels":        config.Labels,
		"annotations":   config.Annotations,
		"linux": map[string]any{
			"cgroup_parent": env.CgroupParent,
			"security_context": map[string]any{
				"namespace_options": namespaceOptions,
			},
			"sysctls": config.Sysctls,
		},
	}
	// runc sets a hostname only in a private UTS namespace, and a
	// hostNetwork pod shares the host's, as the kubelet sets it up.
	if !config.HostNetwork {
		podJSON["hostname"] = config.Name
	}
	content, err := json.MarshalIndent(podJSON, "", "  ")
	if err != nil {
		return "", fmt.Errorf("failed to encode pod config: %w", err)
	}
	path := filepath.Join(env.Dir, "pods", fmt.Sprintf("%d-%s.json", sequence, config.Name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("failed to create pod config folder: %w", err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return "", fmt.Errorf("failed to write pod config: %w", err)
	}
	return path, nil
}

// RunPod runs `crictl runp` and returns the pod, or the *CrictlError that
// carries containerd's message.
func (env *Env) RunPod(config PodConfig) (*Pod, error) {
	path, err := env.writePodConfig(&config)
	if err != nil {
		return nil, err
	}
	output, err := env.Crictl("runp", path)
	if err != nil {
		return nil, err
	}
	return &Pod{ID: strings.TrimSpace(output), Config: config, configPath: path}, nil
}

// MustRunPod runs a pod and fails the test when that fails.
func (env *Env) MustRunPod(config PodConfig) *Pod {
	env.t.Helper()
	pod, err := env.RunPod(config)
	if err != nil {
		env.t.Fatalf("failed to run pod: %v", err)
	}
	return pod
}

// ContainerConfig is the part of a CRI ContainerConfig that the tests set.
type ContainerConfig struct {
	// Name is the container name. Empty means a name unique in the environment.
	Name string
	// Image is the image reference. Empty means the tools image.
	Image   string
	Command []string
	Args    []string
}

// CreateContainer runs `crictl create` in pod and returns the container ID.
func (env *Env) CreateContainer(pod *Pod, config ContainerConfig) (string, error) {
	sequence := env.nextSequence()
	if config.Name == "" {
		config.Name = fmt.Sprintf("container-%d", sequence)
	}
	if config.Image == "" {
		config.Image = images.ToolsImage
	}
	containerJSON := map[string]any{
		"metadata": map[string]any{"name": config.Name},
		"image":    map[string]any{"image": config.Image},
		"command":  config.Command,
		"args":     config.Args,
		"log_path": config.Name + ".log",
	}
	content, err := json.MarshalIndent(containerJSON, "", "  ")
	if err != nil {
		return "", fmt.Errorf("failed to encode container config: %w", err)
	}
	path := filepath.Join(env.Dir, "pods", fmt.Sprintf("%d-%s.json", sequence, config.Name))
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return "", fmt.Errorf("failed to write container config: %w", err)
	}
	output, err := env.Crictl("create", pod.ID, path, pod.configPath)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(output), nil
}

// StartContainer runs `crictl start`.
func (env *Env) StartContainer(containerID string) error {
	_, err := env.Crictl("start", containerID)
	return err
}

// MustRunContainer creates and starts a container in pod and fails the test
// when either fails.
func (env *Env) MustRunContainer(pod *Pod, config ContainerConfig) string {
	env.t.Helper()
	containerID, err := env.CreateContainer(pod, config)
	if err != nil {
		env.t.Fatalf("failed to create container: %v", err)
	}
	if err := env.StartContainer(containerID); err != nil {
		env.t.Fatalf("failed to start container %s: %v", containerID, err)
	}
	return containerID
}

// Exec runs a command in a container with `crictl exec --sync` and returns
// its stdout.
func (env *Env) Exec(containerID string, command ...string) (string, error) {
	args := append([]string{"exec", "--sync", "--timeout", "20", containerID}, command...)
	return env.Crictl(args...)
}

// StopPod runs `crictl stopp`.
func (env *Env) StopPod(podID string) error {
	_, err := env.Crictl("stopp", podID)
	return err
}

// RemovePod runs `crictl rmp`.
func (env *Env) RemovePod(podID string) error {
	_, err := env.Crictl("rmp", podID)
	return err
}

// PodStatus is the part of `crictl inspectp` output that the tests read.
type PodStatus struct {
	State string
	// IP is the eth0 address that the CRI reports.
	IP string
	// PID is the pause task's process ID.
	PID int
	// NetnsPath is the pinned network namespace, empty for a hostNetwork pod.
	NetnsPath string
}

// InspectPod runs `crictl inspectp`.
func (env *Env) InspectPod(podID string) (PodStatus, error) {
	output, err := env.Crictl("inspectp", "--output", "json", podID)
	if err != nil {
		return PodStatus{}, err
	}
	var inspect struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			PID         int `json:"pid"`
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(output), &inspect); err != nil {
		return PodStatus{}, fmt.Errorf("failed to parse crictl inspectp output: %w", err)
	}
	status := PodStatus{State: inspect.Status.State, IP: inspect.Status.Network.IP, PID: inspect.Info.PID}
	for _, namespace := range inspect.Info.RuntimeSpec.Linux.Namespaces {
		if namespace.Type == "network" {
			status.NetnsPath = namespace.Path
		}
	}
	return status, nil
}

// ContainerStatus is the part of `crictl inspect` output that the tests
// read.
type ContainerStatus struct {
	State string
	// PID is the container task's process ID.
	PID int
}

// InspectContainer runs `crictl inspect`.
func (env *Env) InspectContainer(containerID string) (ContainerStatus, error) {
	output, err := env.Crictl("inspect", "--output", "json", containerID)
	if err != nil {
		return ContainerStatus{}, err
	}
	var inspect struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
		Info struct {
			PID int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(output), &inspect); err != nil {
		return ContainerStatus{}, fmt.Errorf("failed to parse crictl inspect output: %w", err)
	}
	return ContainerStatus{State: inspect.Status.State, PID: inspect.Info.PID}, nil
}

// removeAllPods stops and removes every pod, so the CRI and nri-cni run
// their CNI DEL before the environment goes away.
func (env *Env) removeAllPods() error {
	output, err := env.Crictl("pods", "--quiet")
	if err != nil {
		return err
	}
	var errs []string
	for _, podID := range strings.Fields(output) {
		if err := env.StopPod(podID); err != nil {
			errs = append(errs, err.Error())
		}
		if err := env.RemovePod(podID); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to remove pods: %s", strings.Join(errs, "; "))
	}
	return nil
}
