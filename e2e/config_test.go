package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

func TestInvalidConfigExitsNamingKey(t *testing.T) {
	t.Parallel()
	env := framework.New(t)

	cases := []struct {
		name  string
		key   string
		value any
	}{
		{name: "bad-duration", key: "cniTimeout", value: "banana"},
		{name: "unknown-key", key: "cniTimout", value: "5s"},
		{name: "wrong-type", key: "pluginIndex", value: []int{1}},
		{name: "bad-log-level", key: "logLevel", value: "loud"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			config := configMap(t, env.NRICNIConfig())
			config[tc.key] = tc.value
			content, err := yaml.Marshal(config)
			if err != nil {
				t.Fatal(err)
			}
			configPath, err := env.WriteNRICNIConfig(content)
			if err != nil {
				t.Fatal(err)
			}

			code, output := env.RunNRICNI(configPath, 10*time.Second)
			if code == 0 {
				t.Errorf("nri-cni exited with 0 for %s: %v, want non-zero; output:\n%s", tc.key, tc.value, output)
			}
			if !strings.Contains(output, tc.key) {
				t.Errorf("nri-cni output does not name key %s:\n%s", tc.key, output)
			}
		})
	}

	// The base config of the cases is valid, so each case fails only because
	// of its one key.
	env.StartNRICNI(env.NRICNIConfig())
}

// configMap returns config as the map of its YAML keys.
func configMap(t *testing.T, config framework.NRICNIConfig) map[string]any {
	t.Helper()
	content, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	result := map[string]any{}
	if err := json.Unmarshal(content, &result); err != nil {
		t.Fatal(err)
	}
	return result
}
