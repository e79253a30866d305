package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testSource is the source name passed to Parse, so errors can be checked for it.
const testSource = "test.yaml"

func TestDefault(t *testing.T) {
	cfg := Default()

	checks := []struct {
		key       string
		got, want any
	}{
		{"nriSocket", cfg.NRISocket, "/var/run/nri/nri.sock"},
		{"pluginName", cfg.PluginName, "nri-cni"},
		{"pluginIndex", cfg.PluginIndex, "10"},
		{"cniConfDir", cfg.CNIConfDir, "/etc/nri-cni/net.d"},
		{"cniBinDirs", cfg.CNIBinDirs, []string{"/opt/cni/bin"}},
		{"cniCacheDir", cfg.CNICacheDir, "/var/lib/cni"},
		{"stateDir", cfg.StateDir, "/var/lib/nri-cni"},
		{"defaultNetworks", cfg.DefaultNetworks, []NetworkSelection(nil)},
		{"interfacePrefix", cfg.InterfacePrefix, "net"},
		{"cniTimeout", cfg.CNITimeout, Duration(10 * time.Second)},
		{"logLevel", cfg.LogLevel, "info"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config is invalid: %v", err)
	}
}

func TestDefaultReturnsFreshCopy(t *testing.T) {
	first := Default()
	first.CNIBinDirs[0] = "/changed"
	first.PluginName = "changed"

	second := Default()
	if second.CNIBinDirs[0] != "/opt/cni/bin" {
		t.Errorf("cniBinDirs of a second Default() = %q, want /opt/cni/bin", second.CNIBinDirs)
	}
	if second.PluginName != "nri-cni" {
		t.Errorf("pluginName of a second Default() = %q, want nri-cni", second.PluginName)
	}
}

func TestLoadMissingDefaultFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")

	cfg, err := Load(path, true)
	if err != nil {
		t.Fatalf("Load(%s, mayBeMissing) failed: %v", path, err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("Load of a missing default file = %+v, want the defaults %+v", cfg, Default())
	}
}

func TestLoadMissingExplicitFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")

	cfg, err := Load(path, false)
	if err == nil {
		t.Fatalf("Load(%s) of a missing file returned %+v and no error", path, cfg)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not wrap os.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %s", err, path)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	// A folder in place of the file fails to read with an error other than
	// ErrNotExist, which mayBeMissing must not turn into the defaults.
	path := t.TempDir()

	if _, err := Load(path, true); err == nil {
		t.Errorf("Load(%s, mayBeMissing) of a folder returned no error", path)
	}
}

func TestLoadReadsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	data := "pluginName: from-file\ncniTimeout: 3s\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, mayBeMissing := range []bool{false, true} {
		cfg, err := Load(path, mayBeMissing)
		if err != nil {
			t.Fatalf("Load(%s, %v) failed: %v", path, mayBeMissing, err)
		}
		if cfg.PluginName != "from-file" {
			t.Errorf("pluginName = %q, want from-file", cfg.PluginName)
		}
		if cfg.CNITimeout != Duration(3*time.Second) {
			t.Errorf("cniTimeout = %v, want 3s", time.Duration(cfg.CNITimeout))
		}
		if cfg.StateDir != "/var/lib/nri-cni" {
			t.Errorf("stateDir = %q, want the default /var/lib/nri-cni", cfg.StateDir)
		}
	}
}

func TestLoadInvalidFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("logLevel: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := Load(path, true)
	if err == nil {
		t.Fatal("Load of a file with logLevel loud returned no error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %s", err, path)
	}
}

func TestParseEmptyData(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"white-space", "  \n\t\n"},
		{"comment-only", "# nothing set here\n"},
		{"document-marker", "---\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), testSource)
			if err != nil {
				t.Fatalf("Parse(%q) failed: %v", tt.data, err)
			}
			if !reflect.DeepEqual(cfg, Default()) {
				t.Errorf("Parse(%q) = %+v, want the defaults", tt.data, cfg)
			}
		})
	}
}

func TestParseEveryKey(t *testing.T) {
	data := `
nriSocket: /tmp/test/nri.sock
pluginName: my-cni
pluginIndex: 42
cniConfDir: /tmp/test/net.d
cniBinDirs:
  - /tmp/test/bin
  - /tmp/test/bin2
cniCacheDir: /tmp/test/cache
stateDir: /tmp/test/state
defaultNetworks:
  - alpha
  - beta@data0
interfacePrefix: vlan
cniTimeout: 1m30s
logLevel: debug
`
	cfg, err := Parse([]byte(data), testSource)
	if err != nil {
		t.Fatalf("Parse failed: %v", err)
	}

	checks := []struct {
		key       string
		got, want any
	}{
		{"nriSocket", cfg.NRISocket, "/tmp/test/nri.sock"},
		{"pluginName", cfg.PluginName, "my-cni"},
		{"pluginIndex", cfg.PluginIndex, "42"},
		{"cniConfDir", cfg.CNIConfDir, "/tmp/test/net.d"},
		{"cniBinDirs", cfg.CNIBinDirs, []string{"/tmp/test/bin", "/tmp/test/bin2"}},
		{"cniCacheDir", cfg.CNICacheDir, "/tmp/test/cache"},
		{"stateDir", cfg.StateDir, "/tmp/test/state"},
		{"defaultNetworks", cfg.DefaultNetworks, []NetworkSelection{
			{Network: "alpha"}, {Network: "beta", IfName: "data0"},
		}},
		{"interfacePrefix", cfg.InterfacePrefix, "vlan"},
		{"cniTimeout", cfg.CNITimeout, Duration(90 * time.Second)},
		{"logLevel", cfg.LogLevel, "debug"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

func TestParseJSON(t *testing.T) {
	data := `{"pluginIndex": "07", "cniBinDirs": ["/tmp/test/bin"], "logLevel": "warn"}`

	cfg, err := Parse([]byte(data), testSource)
	if err != nil {
		t.Fatalf("Parse of JSON failed: %v", err)
	}
	if cfg.PluginIndex != "07" {
		t.Errorf("pluginIndex = %q, want 07", cfg.PluginIndex)
	}
	if !reflect.DeepEqual(cfg.CNIBinDirs, []string{"/tmp/test/bin"}) {
		t.Errorf("cniBinDirs = %q, want [/tmp/test/bin]", cfg.CNIBinDirs)
	}
	if cfg.LogLevel != "warn" {
		t.Errorf("logLevel = %q, want warn", cfg.LogLevel)
	}
}

func TestParsePluginIndex(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"yaml-number", "pluginIndex: 10", "10"},
		{"yaml-string", `pluginIndex: "10"`, "10"},
		{"yaml-single-quoted", "pluginIndex: '99'", "99"},
		{"leading-zero-string", `pluginIndex: "00"`, "00"},
		{"json-number", `{"pluginIndex": 55}`, "55"},
		{"json-string", `{"pluginIndex": "55"}`, "55"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), testSource)
			if err != nil {
				t.Fatalf("Parse(%q) failed: %v", tt.data, err)
			}
			if cfg.PluginIndex != tt.want {
				t.Errorf("pluginIndex = %q, want %q", cfg.PluginIndex, tt.want)
			}
		})
	}
}

func TestParseUnknownKey(t *testing.T) {
	tests := []struct {
		name string
		data string
		key  string
	}{
		{"misspelled", "nriSockett: /tmp/nri.sock", "nriSockett"},
		{"wrong-case", "NRISocket: /tmp/nri.sock", "NRISocket"},
		{"next-to-known-keys", "logLevel: info\ncniNetworks: [a]\npluginName: x", "cniNetworks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), testSource)
			if err == nil {
				t.Fatalf("Parse(%q) returned no error", tt.data)
			}
			msg := err.Error()
			if !strings.Contains(msg, `unknown key "`+tt.key+`"`) {
				t.Errorf("error %q does not name the unknown key %q", msg, tt.key)
			}
			if !strings.Contains(msg, testSource) {
				t.Errorf("error %q does not name the source %s", msg, testSource)
			}
			// The message lists the valid keys, so the user can fix a typo.
			if !strings.Contains(msg, "nriSocket") {
				t.Errorf("error %q does not list the known keys", msg)
			}
		})
	}
}

func TestParseInvalidValues(t *testing.T) {
	tests := []struct {
		name string
		data string
		// key and value must both appear in the error message.
		key   string
		value string
	}{
		{"relative-nri-socket", "nriSocket: nri.sock", "nriSocket", `"nri.sock"`},
		{"empty-nri-socket", `nriSocket: ""`, "nriSocket", "empty"},
		{"nri-socket-not-string", "nriSocket: [a]", "nriSocket", `["a"]`},
		{"relative-containerd-socket", "containerdSocket: containerd.sock", "containerdSocket", `"containerd.sock"`},
		{"containerd-socket-not-string", "containerdSocket: 5", "containerdSocket", "5"},
		{"relative-conf-dir", "cniConfDir: net.d", "cniConfDir", `"net.d"`},
		{"cri-conf-dir", "cniConfDir: /etc/cni/net.d", "cniConfDir", `"/etc/cni/net.d"`},
		{"cri-conf-dir-trailing-slash", "cniConfDir: /etc/cni/net.d/", "cniConfDir",
			`"/etc/cni/net.d/"`},
		{"cri-conf-dir-unclean", "cniConfDir: /etc/cni/./net.d", "cniConfDir",
			`"/etc/cni/./net.d"`},
		{"relative-cache-dir", "cniCacheDir: cache", "cniCacheDir", `"cache"`},
		{"relative-state-dir", "stateDir: ./state", "stateDir", `"./state"`},
		{"empty-bin-dirs", "cniBinDirs: []", "cniBinDirs", "empty"},
		{"relative-bin-dir", "cniBinDirs: [/opt/cni/bin, bin]", "cniBinDirs", `"bin"`},
		{"empty-bin-dir", `cniBinDirs: [""]`, "cniBinDirs", "empty"},
		{"bin-dirs-not-list", "cniBinDirs: /opt/cni/bin", "cniBinDirs", `"/opt/cni/bin"`},
		{"empty-plugin-name", `pluginName: ""`, "pluginName", `""`},
		{"plugin-name-with-slash", "pluginName: a/b", "pluginName", `"a/b"`},
		{"plugin-name-with-space", `pluginName: "a b"`, "pluginName", `"a b"`},
		{"plugin-index-one-digit", "pluginIndex: 1", "pluginIndex", `"1"`},
		{"plugin-index-three-digits", "pluginIndex: 100", "pluginIndex", `"100"`},
		{"plugin-index-negative", `pluginIndex: "-1"`, "pluginIndex", `"-1"`},
		{"plugin-index-plus-sign", `pluginIndex: "+1"`, "pluginIndex", `"+1"`},
		{"plugin-index-letters", "pluginIndex: ab", "pluginIndex", `"ab"`},
		{"plugin-index-fraction", "pluginIndex: 1.5", "pluginIndex", `"1.5"`},
		{"plugin-index-list", "pluginIndex: [10]", "pluginIndex", "[10]"},
		{"prefix-too-long", "interfacePrefix: abcdefghijklmn", "interfacePrefix",
			`"abcdefghijklmn"`},
		{"prefix-with-slash", "interfacePrefix: a/b", "interfacePrefix", `"a/b"`},
		{"prefix-with-colon", `interfacePrefix: "a:b"`, "interfacePrefix", `"a:b"`},
		{"prefix-with-space", `interfacePrefix: "a b"`, "interfacePrefix", `"a b"`},
		{"empty-prefix", `interfacePrefix: ""`, "interfacePrefix", `""`},
		{"timeout-not-duration", "cniTimeout: banana", "cniTimeout", `"banana"`},
		{"timeout-zero", "cniTimeout: 0s", "cniTimeout", `"0s"`},
		{"timeout-negative", "cniTimeout: -1s", "cniTimeout", `"-1s"`},
		{"timeout-number", "cniTimeout: 10", "cniTimeout", "10"},
		{"log-level-unknown", "logLevel: loud", "logLevel", `"loud"`},
		{"default-networks-duplicate", "defaultNetworks: [alpha, beta, alpha]",
			"defaultNetworks", `"alpha"`},
		{"default-networks-eth0", "defaultNetworks: [alpha@eth0]", "defaultNetworks", `"eth0"`},
		{"default-networks-lo", "defaultNetworks: [alpha@lo]", "defaultNetworks", `"lo"`},
		{"default-networks-same-ifname", "defaultNetworks: [alpha@data, beta@data]",
			"defaultNetworks", `"data"`},
		{"default-networks-explicit-hits-generated", "defaultNetworks: [alpha, beta@net1]",
			"defaultNetworks", `"net1"`},
		{"default-networks-generated-hits-prefix", "interfacePrefix: vlan\n" +
			"defaultNetworks: [alpha@vlan2, beta]", "defaultNetworks", `"vlan2"`},
		{"default-networks-no-name", "defaultNetworks: ['@net1']", "defaultNetworks", `"@net1"`},
		{"default-networks-not-list", "defaultNetworks: alpha", "defaultNetworks", `"alpha"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), testSource)
			if err == nil {
				t.Fatalf("Parse(%q) returned %+v and no error", tt.data, cfg)
			}
			msg := err.Error()
			if !strings.Contains(msg, `key "`+tt.key+`"`) {
				t.Errorf("error %q does not name the key %q", msg, tt.key)
			}
			if !strings.Contains(msg, tt.value) {
				t.Errorf("error %q does not contain the value %s", msg, tt.value)
			}
			if !strings.Contains(msg, testSource) {
				t.Errorf("error %q does not name the source %s", msg, testSource)
			}
		})
	}
}

func TestParseValidEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		// 13 bytes plus the two digits of net99 make the maximum of 15.
		{"prefix-thirteen-bytes", "interfacePrefix: abcdefghijklm"},
		{"conf-dir-below-cri-dir", "cniConfDir: /etc/cni/net.d/nri"},
		{"plugin-index-zero-zero", `pluginIndex: "00"`},
		{"timeout-one-nanosecond", "cniTimeout: 1ns"},
		{"log-level-error", "logLevel: error"},
		{"default-networks-empty", "defaultNetworks: []"},
		{"default-networks-explicit-net2", "defaultNetworks: [alpha, beta@net1x, gamma@net2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.data), testSource); err != nil {
				t.Errorf("Parse(%q) failed: %v", tt.data, err)
			}
		})
	}
}

func TestParseDefaultNetworksEmptyList(t *testing.T) {
	// An explicit empty list selects no network, unlike an absent key.
	cfg, err := Parse([]byte("defaultNetworks: []"), testSource)
	if err != nil {
		t.Fatalf("Parse failed: %v", err)
	}
	if cfg.DefaultNetworks == nil {
		t.Error("defaultNetworks: [] decoded as nil, which means every network")
	}
	if len(cfg.DefaultNetworks) != 0 {
		t.Errorf("defaultNetworks = %v, want an empty list", cfg.DefaultNetworks)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"invalid-yaml", "nriSocket: [unclosed"},
		{"top-level-list", "- nriSocket\n- stateDir\n"},
		{"top-level-string", "just a string"},
		{"tab-indentation", "cniBinDirs:\n\t- /opt/cni/bin\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), testSource)
			if err == nil {
				t.Fatalf("Parse(%q) returned %+v and no error", tt.data, cfg)
			}
			if !strings.Contains(err.Error(), testSource) {
				t.Errorf("error %q does not name the source %s", err, testSource)
			}
		})
	}
}

func TestValidateDirect(t *testing.T) {
	cfg := Default()
	cfg.CNIBinDirs = nil

	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate of nil cniBinDirs returned no error")
	}
	if !strings.Contains(err.Error(), `key "cniBinDirs"`) {
		t.Errorf("error %q does not name the key cniBinDirs", err)
	}
}

func TestConfigMarshalJSON(t *testing.T) {
	cfg := Default()
	cfg.CNITimeout = Duration(1500 * time.Millisecond)
	cfg.DefaultNetworks = []NetworkSelection{{Network: "alpha"}, {Network: "beta", IfName: "data0"}}

	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("json.Marshal failed: %v", err)
	}
	var decoded map[string]any
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatalf("output %s is not a JSON object: %v", data, err)
	}
	if got := decoded["cniTimeout"]; got != "1.5s" {
		t.Errorf("cniTimeout marshals as %#v, want \"1.5s\"", got)
	}
	wantNetworks := []any{"alpha", "beta@data0"}
	if got := decoded["defaultNetworks"]; !reflect.DeepEqual(got, wantNetworks) {
		t.Errorf("defaultNetworks marshals as %#v, want %#v", got, wantNetworks)
	}
	if got := decoded["pluginIndex"]; got != "10" {
		t.Errorf("pluginIndex marshals as %#v, want \"10\"", got)
	}
}

func TestConfigMarshalParseRoundTrip(t *testing.T) {
	cfg := Default()
	cfg.CNIBinDirs = []string{"/tmp/test/bin"}
	cfg.DefaultNetworks = []NetworkSelection{{Network: "alpha", IfName: "data0"}, {Network: "beta"}}
	cfg.CNITimeout = Duration(2 * time.Minute)

	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("json.Marshal failed: %v", err)
	}
	parsed, err := Parse(data, testSource)
	if err != nil {
		t.Fatalf("Parse of marshaled config %s failed: %v", data, err)
	}
	if !reflect.DeepEqual(parsed, cfg) {
		t.Errorf("round trip = %+v, want %+v", parsed, cfg)
	}
}

func TestParseDefaultNetworksWithoutValueMeansAll(t *testing.T) {
	cfg, err := Parse([]byte("defaultNetworks:\n#  - data\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultNetworks != nil {
		t.Errorf("DefaultNetworks = %v, want nil (every network)", cfg.DefaultNetworks)
	}
}

func TestParseAttachMode(t *testing.T) {
	cfg, err := Parse([]byte("attachMode: async\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AttachMode != AttachAsync {
		t.Errorf("AttachMode = %q, want async", cfg.AttachMode)
	}
	_, err = Parse([]byte("attachMode: later\n"), "test")
	if err == nil || !strings.Contains(err.Error(), `"attachMode"`) || !strings.Contains(err.Error(), `"later"`) {
		t.Errorf("error = %v, want one naming attachMode and later", err)
	}
}

func TestParseLogFileMustBeAbsolute(t *testing.T) {
	_, err := Parse([]byte("logFile: nri-cni.log\n"), "test")
	if err == nil || !strings.Contains(err.Error(), `"logFile"`) {
		t.Errorf("error = %v, want one naming logFile", err)
	}
}

func TestParseRejectsKeyWithoutValue(t *testing.T) {
	_, err := Parse([]byte("stateDir:\n"), "test")
	if err == nil || !strings.Contains(err.Error(), `"stateDir" has no value`) {
		t.Errorf("error = %v, want one saying stateDir has no value", err)
	}
}

func TestParseRejectsDuplicateKey(t *testing.T) {
	_, err := Parse([]byte("logLevel: info\nlogLevel: debug\n"), "test")
	if err == nil || !strings.Contains(err.Error(), "logLevel") {
		t.Errorf("error = %v, want one naming the duplicate key logLevel", err)
	}
}

func TestEmptyContainerdSocketTurnsEarlyAttachOff(t *testing.T) {
	cfg, err := Parse([]byte(`containerdSocket: ""`+"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ContainerdSocket != "" {
		t.Errorf("containerdSocket = %q, want empty", cfg.ContainerdSocket)
	}
	if got := Default().ContainerdSocket; got != "/run/containerd/containerd.sock" {
		t.Errorf("default containerdSocket = %q, want containerd's /run/containerd/containerd.sock", got)
	}
}
