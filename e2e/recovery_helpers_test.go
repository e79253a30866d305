package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// requireNoLeftovers waits up to timeout until the pods of networks have left
// nothing behind (leases, veths, netns mounts, state files and libcni cache
// entries), fails the test with what is left otherwise, and returns how long
// the wait took.
func requireNoLeftovers(t *testing.T, env *framework.Env, timeout time.Duration, when string, networks ...framework.Network) time.Duration {
	t.Helper()
	leftovers, took, err := env.WaitForNoLeftovers(timeout, networks...)
	if err != nil {
		t.Fatal(err)
	}
	if !leftovers.Empty() {
		t.Errorf("left %s, after waiting %s: %s", when, timeout, leftovers)
		return took
	}
	t.Logf("nothing left %s (%s) after %s", when, leftovers.Counts(), took.Round(time.Millisecond))
	return took
}

// waitForEntry waits up to timeout for nri-cni to log message in an entry
// for which match returns true, and returns that entry. A nil match takes
// the first entry with the message.
func waitForEntry(t *testing.T, process *framework.Process, message string, match func(framework.LogEntry) bool, timeout time.Duration) framework.LogEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, entry := range framework.LogEntries(process.Log(), message) {
			if match == nil || match(entry) {
				return entry
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nri-cni did not log a matching %q within %s; log:\n%s", message, timeout, process.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForEntries waits up to timeout until nri-cni has logged message at
// least n times and returns those entries.
func waitForEntries(t *testing.T, process *framework.Process, message string, n int, timeout time.Duration) []framework.LogEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries := framework.LogEntries(process.Log(), message)
		if len(entries) >= n {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("nri-cni logged %q %d times within %s, want %d; log:\n%s", message, len(entries), timeout, n, process.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// entriesFor returns the entries of message whose sandboxID is id.
func entriesFor(process *framework.Process, message, id string) []framework.LogEntry {
	var result []framework.LogEntry
	for _, entry := range framework.LogEntries(process.Log(), message) {
		if entry.String("sandboxID") == id {
			result = append(result, entry)
		}
	}
	return result
}

// entryTime returns the time field of a log entry, which nri-cni writes in
// ISO 8601 with milliseconds.
func entryTime(t *testing.T, entry framework.LogEntry) time.Time {
	t.Helper()
	value, err := time.Parse("2006-01-02T15:04:05.000Z0700", entry.String("time"))
	if err != nil {
		t.Fatalf("failed to parse time of log entry %v: %v", entry, err)
	}
	return value
}

// entryDuration returns a duration field of a log entry, such as delay.
func entryDuration(t *testing.T, entry framework.LogEntry, key string) time.Duration {
	t.Helper()
	value, err := time.ParseDuration(entry.String(key))
	if err != nil {
		t.Fatalf("failed to parse %s of log entry %v: %v", key, entry, err)
	}
	return value
}

// removePod stops and removes a pod and fails the test when either fails.
func removePod(t *testing.T, env *framework.Env, podID string) {
	t.Helper()
	if err := env.StopPod(podID); err != nil {
		t.Fatalf("failed to stop pod: %v", err)
	}
	if err := env.RemovePod(podID); err != nil {
		t.Fatalf("failed to remove pod: %v", err)
	}
}

// podNetnsAddresses returns the IPv4 addresses in a pod's pinned network
// namespace by interface name, read with nsenter, so it needs no container.
func podNetnsAddresses(t *testing.T, env *framework.Env, podID string) map[string]netip.Prefix {
	t.Helper()
	status, err := env.InspectPod(podID)
	if err != nil {
		t.Fatal(err)
	}
	if status.NetnsPath == "" {
		t.Fatalf("pod %s has no network namespace", podID)
	}
	output, err := exec.Command("nsenter", "--net="+status.NetnsPath, "ip", "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("failed to list addresses in netns %s: %v: %s", status.NetnsPath, err, output)
	}
	return parseAddresses(t, string(output))
}

// stateRecord is the part of an nri-cni state file that the tests read.
type stateRecord struct {
	ID          string `json:"id"`
	Attachments []struct {
		Network string          `json:"network"`
		IfName  string          `json:"ifName"`
		Phase   string          `json:"phase"`
		Config  json.RawMessage `json:"config"`
		Result  struct {
			IPs []struct {
				Address string `json:"address"`
			} `json:"ips"`
		} `json:"result"`
	} `json:"attachments"`
}

// readState reads the state file of a sandbox.
func readState(t *testing.T, env *framework.Env, sandboxID string) stateRecord {
	t.Helper()
	content, err := os.ReadFile(stateFilePath(env, sandboxID))
	if err != nil {
		t.Fatalf("failed to read state of sandbox %s: %v", sandboxID, err)
	}
	var record stateRecord
	if err := json.Unmarshal(content, &record); err != nil {
		t.Fatalf("failed to parse state of sandbox %s: %v: %s", sandboxID, err, content)
	}
	return record
}

func stateFilePath(env *framework.Env, sandboxID string) string {
	return env.StateDir + "/sandboxes/" + sandboxID + ".json"
}

// recordedAddress returns the address that the state of a sandbox records
// for its attachment ifName, without the prefix length.
func recordedAddress(t *testing.T, env *framework.Env, sandboxID, ifName string) string {
	t.Helper()
	record := readState(t, env, sandboxID)
	for _, attachment := range record.Attachments {
		if attachment.IfName != ifName {
			continue
		}
		if len(attachment.Result.IPs) != 1 {
			t.Fatalf("state of sandbox %s records %d addresses on %s, want one: %+v", sandboxID, len(attachment.Result.IPs), ifName, attachment)
		}
		prefix, err := netip.ParsePrefix(attachment.Result.IPs[0].Address)
		if err != nil {
			t.Fatalf("failed to parse recorded address of sandbox %s: %v", sandboxID, err)
		}
		return prefix.Addr().String()
	}
	t.Fatalf("state of sandbox %s has no attachment %s: %+v", sandboxID, ifName, record)
	return ""
}

// hasCall reports whether calls contain a call of command for a sandbox.
func hasCall(calls []framework.RecordedCall, command, sandboxID string) bool {
	for _, call := range calls {
		if call.Command == command && call.ContainerID == sandboxID {
			return true
		}
	}
	return false
}

// containsAll reports whether text contains every one of parts.
func containsAll(text string, parts ...string) bool {
	for _, part := range parts {
		if !strings.Contains(text, part) {
			return false
		}
	}
	return true
}
