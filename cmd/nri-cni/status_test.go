package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

func TestPrintStatusListsAttachments(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	store, err := state.NewDiskStore(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	err = store.Save(&state.Sandbox{ID: "0123456789abcdef", Namespace: "default", Name: "web",
		Attachments: []state.Attachment{{
			Network: "data", IfName: "net1", Phase: state.PhaseAdded, Config: []byte(`{}`),
			Result: []byte(`{"cniVersion":"1.0.0","ips":[{"address":"10.250.0.5/24"}]}`),
		}}})
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := printStatus(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default/web", "0123456789abc", "data", "net1", "10.250.0.5/24", "added"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAddressesOfResultWithoutIPs(t *testing.T) {
	if got := addresses(nil); got != "-" {
		t.Errorf("addresses(nil) = %q, want -", got)
	}
	if got := addresses([]byte(`{"ips":[]}`)); got != "-" {
		t.Errorf("addresses(no ips) = %q, want -", got)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for range 1000 {
		d := jitter(minBackoff)
		if d < minBackoff/2 || d >= minBackoff {
			t.Fatalf("jitter(%s) = %s, want within [%s, %s)", minBackoff, d, minBackoff/2, minBackoff)
		}
	}
}

func TestLogOutputSwitchesToFile(t *testing.T) {
	path := t.TempDir() + "/nri-cni.log"
	out := &logOutput{}
	if err := out.setFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "line\n" {
		t.Errorf("log file contains %q, want the written line", data)
	}
	if err := out.setFile(""); err != nil {
		t.Fatal(err)
	}
	if out.file != nil {
		t.Error("log file still open after switching to stderr")
	}
}

func TestParseArgsAcceptsFlagsAfterStatus(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantCommand string
		wantConfig  string
		wantErr     string
	}{
		{"no-command", []string{"--config", "/a.yaml"}, "", "/a.yaml", ""},
		{"flag-before-status", []string{"--config", "/a.yaml", "status"}, "status", "/a.yaml", ""},
		{"flag-after-status", []string{"status", "--config", "/b.yaml"}, "status", "/b.yaml", ""},
		{"unknown-command", []string{"start"}, "", "", `unknown command "start"`},
		{"extra-argument", []string{"status", "extra"}, "", "", `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := flag.NewFlagSet("test", flag.ContinueOnError)
			configPath := flags.String("config", "", "")
			command, err := parseArgs(flags, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if command != tt.wantCommand {
				t.Errorf("command = %q, want %q", command, tt.wantCommand)
			}
			if *configPath != tt.wantConfig {
				t.Errorf("config = %q, want %q", *configPath, tt.wantConfig)
			}
		})
	}
}
