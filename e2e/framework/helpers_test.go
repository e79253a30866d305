package framework

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"
)

func TestBlockSubnets(t *testing.T) {
	cases := []struct {
		index  int
		subnet int
		want   string
	}{
		{index: 0, subnet: 0, want: "198.18.0.0/24"},
		{index: 0, subnet: 15, want: "198.18.15.0/24"},
		{index: 1, subnet: 0, want: "198.18.16.0/24"},
		{index: 15, subnet: 15, want: "198.18.255.0/24"},
		{index: 16, subnet: 0, want: "198.19.0.0/24"},
		{index: 31, subnet: 15, want: "198.19.255.0/24"},
	}
	benchmarking := netip.MustParsePrefix("198.18.0.0/15")
	for _, tc := range cases {
		b := &block{index: tc.index}
		got := b.subnet(tc.subnet)
		if got.String() != tc.want {
			t.Errorf("block %d subnet %d = %s, want %s", tc.index, tc.subnet, got, tc.want)
		}
		if !b.prefix().Contains(got.Addr()) {
			t.Errorf("block %d prefix %s does not contain its subnet %s", tc.index, b.prefix(), got)
		}
		if !benchmarking.Contains(got.Addr()) {
			t.Errorf("subnet %s is outside %s", got, benchmarking)
		}
	}
}

func TestBlockPrefixesDisjoint(t *testing.T) {
	seen := map[netip.Prefix]int{}
	for index := 0; index < blockCount; index++ {
		prefix := (&block{index: index}).prefix()
		for other, otherIndex := range seen {
			if other.Overlaps(prefix) {
				t.Errorf("block %d (%s) overlaps block %d (%s)", index, prefix, otherIndex, other)
			}
		}
		seen[prefix] = index
	}
}

func TestLinkPrefixLeavesRoomForSuffix(t *testing.T) {
	prefix := (&block{index: blockCount - 1}).linkPrefix()
	if got := len(prefix) + 10; got > 15 {
		t.Errorf("link prefix %q plus a 10-byte suffix is %d bytes, more than the 15 of an interface name", prefix, got)
	}
}

func TestGateway(t *testing.T) {
	if got := Gateway(netip.MustParsePrefix("198.18.1.0/24")); got != netip.MustParseAddr("198.18.1.1") {
		t.Errorf("Gateway(198.18.1.0/24) = %s, want 198.18.1.1", got)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	cases := map[string]string{
		`/tmp/plain`:          "/tmp/plain",
		`/tmp/with\040space`:  "/tmp/with space",
		`/tmp/tab\011and\134`: "/tmp/tab\tand\\",
		`/tmp/trailing\04`:    `/tmp/trailing\04`,
	}
	for escaped, want := range cases {
		if got := unescapeMountPath(escaped); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", escaped, got, want)
		}
	}
}

// testConflist is the part of a conflist that TestNetworkConflist reads.
type testConflist struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []struct {
		Type      string `json:"type"`
		Bridge    string `json:"bridge"`
		IsGateway bool   `json:"isGateway"`
		IPMasq    *bool  `json:"ipMasq"`
		IPAM      struct {
			Type    string                `json:"type"`
			DataDir string                `json:"dataDir"`
			Ranges  [][]map[string]string `json:"ranges"`
		} `json:"ipam"`
		RecordFile string `json:"recordFile"`
		FailAdd    bool   `json:"failAdd"`
		FailDel    bool   `json:"failDel"`
		SleepAdd   string `json:"sleepAdd"`
	} `json:"plugins"`
}

func TestNetworkConflist(t *testing.T) {
	network := Network{
		Name:       "blue",
		Bridge:     "nce03blue",
		Subnet:     netip.MustParsePrefix("198.18.49.0/24"),
		RangeStart: netip.MustParseAddr("198.18.49.10"),
		RangeEnd:   netip.MustParseAddr("198.18.49.10"),
		Record:     &RecordPlugin{File: "/tmp/calls", FailDel: true, SleepAdd: 1500 * time.Millisecond},
	}
	content, err := network.Conflist("/tmp/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var conflist testConflist
	if err := json.Unmarshal(content, &conflist); err != nil {
		t.Fatalf("conflist is not valid JSON: %v\n%s", err, content)
	}

	if conflist.Name != "blue" || conflist.CNIVersion != "1.0.0" {
		t.Errorf("name %q version %q, want blue 1.0.0", conflist.Name, conflist.CNIVersion)
	}
	if len(conflist.Plugins) != 2 {
		t.Fatalf("conflist has %d plugins, want bridge and record:\n%s", len(conflist.Plugins), content)
	}

	bridge := conflist.Plugins[0]
	if bridge.Type != "bridge" || bridge.Bridge != "nce03blue" || !bridge.IsGateway {
		t.Errorf("bridge plugin = %+v, want type bridge on nce03blue with isGateway", bridge)
	}
	if bridge.IPMasq == nil || *bridge.IPMasq {
		t.Errorf("bridge ipMasq = %v, want an explicit false", bridge.IPMasq)
	}
	if bridge.IPAM.Type != "host-local" || bridge.IPAM.DataDir != "/tmp/ipam" {
		t.Errorf("ipam = %+v, want host-local in /tmp/ipam", bridge.IPAM)
	}

	wantRange := map[string]string{"subnet": "198.18.49.0/24", "rangeStart": "198.18.49.10", "rangeEnd": "198.18.49.10"}
	if len(bridge.IPAM.Ranges) != 1 || len(bridge.IPAM.Ranges[0]) != 1 {
		t.Fatalf("ipam ranges = %v, want one range", bridge.IPAM.Ranges)
	}
	for key, want := range wantRange {
		if got := bridge.IPAM.Ranges[0][0][key]; got != want {
			t.Errorf("range %s = %q, want %q", key, got, want)
		}
	}

	record := conflist.Plugins[1]
	if record.Type != "record" || record.RecordFile != "/tmp/calls" || record.FailAdd || !record.FailDel || record.SleepAdd != "1.5s" {
		t.Errorf("record plugin = %+v, want recordFile /tmp/calls, failDel and sleepAdd 1.5s only", record)
	}
}

func TestLogEntries(t *testing.T) {
	log := `not json
{"level":"info","msg":"connected","sandboxes":0}
{"level":"info","msg":"attached network","sandboxID":"abc","took":0.012}
{"level":"info","msg":"attached network","sandboxID":"def"
{"level":"info","msg":"attached network","sandboxID":"ghi"}
`
	entries := LogEntries(log, "attached network")
	if len(entries) != 2 {
		t.Fatalf("entries = %v, want the two complete attached network lines", entries)
	}
	if got := entries[0].String("sandboxID"); got != "abc" {
		t.Errorf("first sandboxID = %q, want abc", got)
	}
	if got := entries[0].String("took"); got != "0.012" {
		t.Errorf("took = %q, want 0.012", got)
	}
	if got := entries[1].String("missing"); got != "" {
		t.Errorf("missing field = %q, want empty", got)
	}
}
