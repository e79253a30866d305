package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseAnnotation(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []NetworkSelection
	}{
		{"empty", "", nil},
		{"only-spaces", "   \t ", nil},
		{"one-name", "alpha", []NetworkSelection{{Network: "alpha"}}},
		{"two-names", "alpha,beta", []NetworkSelection{{Network: "alpha"}, {Network: "beta"}}},
		{"spaces-around-items", "  alpha ,\tbeta@data0  ", []NetworkSelection{
			{Network: "alpha"}, {Network: "beta", IfName: "data0"},
		}},
		{"name-at-ifname", "alpha@data0", []NetworkSelection{{Network: "alpha", IfName: "data0"}}},
		{"mixed", "alpha,beta@net7,gamma", []NetworkSelection{
			{Network: "alpha"}, {Network: "beta", IfName: "net7"}, {Network: "gamma"},
		}},
		{"ifname-fifteen-bytes", "alpha@abcdefghijklmno", []NetworkSelection{
			{Network: "alpha", IfName: "abcdefghijklmno"},
		}},
		{"ifname-eth1", "alpha@eth1", []NetworkSelection{{Network: "alpha", IfName: "eth1"}}},
		{"name-with-dots-and-dashes", "my-net.v2_a", []NetworkSelection{{Network: "my-net.v2_a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnnotation(tt.value)
			if err != nil {
				t.Fatalf("ParseAnnotation(%q) failed: %v", tt.value, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseAnnotation(%q) = %v, want %v", tt.value, got, tt.want)
			}
			if len(tt.want) > 0 && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseAnnotation(%q) = %#v, want %#v", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseAnnotationInvalid(t *testing.T) {
	tests := []struct {
		name  string
		value string
		// detail must appear in the error message.
		detail string
	}{
		{"ifname-sixteen-bytes", "alpha@abcdefghijklmnop", `"abcdefghijklmnop"`},
		{"ifname-with-slash", "alpha@a/b", `"a/b"`},
		{"ifname-with-space", "alpha@a b", `"a b"`},
		{"ifname-with-tab", "alpha@a\tb", strconv.Quote("a\tb")},
		{"ifname-dot", "alpha@.", `"."`},
		{"ifname-dot-dot", "alpha@..", `".."`},
		{"ifname-eth0", "alpha@eth0", `"eth0"`},
		{"ifname-lo", "alpha@lo", `"lo"`},
		{"ifname-with-colon", "alpha@x:y", `"x:y"`},
		{"ifname-empty", "alpha@", "empty"},
		{"name-empty", "@net1", `"@net1"`},
		{"name-with-space", "al pha", `"al pha"`},
		{"empty-item", "alpha,,beta", "no name"},
		{"trailing-comma", "alpha,", "no name"},
		{"bad-second-item", "alpha,beta@eth0", `"eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnnotation(tt.value)
			if err == nil {
				t.Fatalf("ParseAnnotation(%q) = %v and no error", tt.value, got)
			}
			if got != nil {
				t.Errorf("ParseAnnotation(%q) returned %v next to the error", tt.value, got)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not contain %s", err, tt.detail)
			}
		})
	}
}

func TestValidateInterfaceName(t *testing.T) {
	tests := []struct {
		name    string
		ifName  string
		wantErr bool
	}{
		{"plain", "net1", false},
		{"fifteen-bytes", strings.Repeat("a", 15), false},
		{"sixteen-bytes", strings.Repeat("a", 16), true},
		// Linux counts bytes: "é" is two bytes, so eight of them are 16.
		{"sixteen-bytes-multibyte", strings.Repeat("é", 8), true},
		{"empty", "", true},
		{"dot", ".", true},
		{"dot-dot", "..", true},
		{"dots-inside", "a.b", false},
		{"slash", "a/b", true},
		{"colon", "x:y", true},
		{"space", "a b", true},
		{"newline", "a\nb", true},
		{"eth0", "eth0", true},
		{"eth1", "eth1", false},
		{"lo", "lo", true},
		{"lo-prefix", "lo1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateInterfaceName(tt.ifName)
			if tt.wantErr && err == nil {
				t.Fatalf("ValidateInterfaceName(%q) returned no error", tt.ifName)
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("ValidateInterfaceName(%q) failed: %v", tt.ifName, err)
			}
			if err != nil && tt.ifName != "" && !strings.Contains(err.Error(), strconv.Quote(tt.ifName)) {
				t.Errorf("error %q does not name the interface %q", err, tt.ifName)
			}
		})
	}
}

func TestParseSelectionStringRoundTrip(t *testing.T) {
	for _, item := range []string{"alpha", "alpha@data0", "beta@net12"} {
		sel, err := ParseSelection(item)
		if err != nil {
			t.Fatalf("ParseSelection(%q) failed: %v", item, err)
		}
		if got := sel.String(); got != item {
			t.Errorf("ParseSelection(%q).String() = %q", item, got)
		}
	}
}

func TestNetworkSelectionMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		sel  NetworkSelection
		want string
	}{
		{"name-only", NetworkSelection{Network: "alpha"}, `"alpha"`},
		{"name-and-ifname", NetworkSelection{Network: "alpha", IfName: "data0"}, `"alpha@data0"`},
		{"quote-escaped", NetworkSelection{Network: `a"b`}, `"a\"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sel.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON failed: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAssignInterfaces(t *testing.T) {
	tests := []struct {
		name       string
		selections []NetworkSelection
		prefix     string
		want       []NetworkSelection
	}{
		{
			name:       "none",
			selections: nil,
			prefix:     "net",
			want:       []NetworkSelection{},
		},
		{
			name:       "numbered-by-position",
			selections: []NetworkSelection{{Network: "alpha"}, {Network: "beta"}, {Network: "gamma"}},
			prefix:     "net",
			want: []NetworkSelection{
				{Network: "alpha", IfName: "net1"},
				{Network: "beta", IfName: "net2"},
				{Network: "gamma", IfName: "net3"},
			},
		},
		{
			name:       "explicit-name-keeps-position-numbers",
			selections: []NetworkSelection{{Network: "alpha"}, {Network: "beta", IfName: "data0"}, {Network: "gamma"}},
			prefix:     "net",
			want: []NetworkSelection{
				{Network: "alpha", IfName: "net1"},
				{Network: "beta", IfName: "data0"},
				{Network: "gamma", IfName: "net3"},
			},
		},
		{
			name:       "all-explicit",
			selections: []NetworkSelection{{Network: "alpha", IfName: "a0"}, {Network: "beta", IfName: "b0"}},
			prefix:     "net",
			want: []NetworkSelection{
				{Network: "alpha", IfName: "a0"},
				{Network: "beta", IfName: "b0"},
			},
		},
		{
			name:       "other-prefix",
			selections: []NetworkSelection{{Network: "alpha"}, {Network: "beta"}},
			prefix:     "vlan",
			want: []NetworkSelection{
				{Network: "alpha", IfName: "vlan1"},
				{Network: "beta", IfName: "vlan2"},
			},
		},
		{
			name:       "explicit-takes-later-generated-name-elsewhere",
			selections: []NetworkSelection{{Network: "alpha", IfName: "net2"}, {Network: "beta", IfName: "net1"}},
			prefix:     "net",
			want: []NetworkSelection{
				{Network: "alpha", IfName: "net2"},
				{Network: "beta", IfName: "net1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AssignInterfaces(tt.selections, tt.prefix)
			if err != nil {
				t.Fatalf("AssignInterfaces(%v, %q) failed: %v", tt.selections, tt.prefix, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AssignInterfaces(%v, %q) = %#v, want %#v", tt.selections, tt.prefix, got, tt.want)
			}
		})
	}
}

func TestAssignInterfacesKeepsInput(t *testing.T) {
	selections := []NetworkSelection{{Network: "alpha"}, {Network: "beta"}}

	if _, err := AssignInterfaces(selections, "net"); err != nil {
		t.Fatalf("AssignInterfaces failed: %v", err)
	}
	for i, sel := range selections {
		if sel.IfName != "" {
			t.Errorf("input selection %d was changed to %v", i, sel)
		}
	}
}

func TestAssignInterfacesInvalid(t *testing.T) {
	tests := []struct {
		name       string
		selections []NetworkSelection
		prefix     string
		// details must all appear in the error message.
		details []string
	}{
		{
			name:       "same-explicit-ifname",
			selections: []NetworkSelection{{Network: "alpha", IfName: "data"}, {Network: "beta", IfName: "data"}},
			prefix:     "net",
			details:    []string{`"data"`, `"alpha"`, `"beta"`},
		},
		{
			name:       "explicit-hits-generated",
			selections: []NetworkSelection{{Network: "alpha"}, {Network: "beta", IfName: "net1"}},
			prefix:     "net",
			details:    []string{`"net1"`, `"alpha"`, `"beta"`},
		},
		{
			name:       "generated-hits-explicit",
			selections: []NetworkSelection{{Network: "alpha", IfName: "net2"}, {Network: "beta"}},
			prefix:     "net",
			details:    []string{`"net2"`, `"alpha"`, `"beta"`},
		},
		{
			name:       "network-twice",
			selections: []NetworkSelection{{Network: "alpha"}, {Network: "alpha", IfName: "data"}},
			prefix:     "net",
			details:    []string{`"alpha"`, "twice"},
		},
		{
			name:       "explicit-eth0",
			selections: []NetworkSelection{{Network: "alpha", IfName: "eth0"}},
			prefix:     "net",
			details:    []string{`"alpha"`, `"eth0"`},
		},
		{
			name:       "generated-name-too-long",
			selections: []NetworkSelection{{Network: "alpha"}},
			prefix:     strings.Repeat("p", 15),
			details:    []string{`"alpha"`, strconv.Quote(strings.Repeat("p", 15) + "1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AssignInterfaces(tt.selections, tt.prefix)
			if err == nil {
				t.Fatalf("AssignInterfaces(%v, %q) = %v and no error", tt.selections, tt.prefix, got)
			}
			for _, detail := range tt.details {
				if !strings.Contains(err.Error(), detail) {
					t.Errorf("error %q does not contain %s", err, detail)
				}
			}
		})
	}
}

func TestAssignInterfacesHundredNetworks(t *testing.T) {
	// Past 99 the generated names get a third digit, which a 13-byte prefix
	// (the maximum that validation accepts) cannot hold.
	selections := make([]NetworkSelection, 100)
	for i := range selections {
		selections[i] = NetworkSelection{Network: "n" + strconv.Itoa(i)}
	}

	got, err := AssignInterfaces(selections, "net")
	if err != nil {
		t.Fatalf("AssignInterfaces of 100 networks with prefix net failed: %v", err)
	}
	if got[99].IfName != "net100" {
		t.Errorf("interface of network 100 = %q, want net100", got[99].IfName)
	}

	prefix := strings.Repeat("p", 13)
	if _, err := AssignInterfaces(selections, prefix); err == nil {
		t.Errorf("AssignInterfaces of 100 networks with prefix %s returned no error", prefix)
	}
}
