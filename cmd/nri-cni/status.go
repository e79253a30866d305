package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

// printStatus writes one line per recorded attachment: the pod, its sandbox,
// the network, the interface, its addresses and the ADD phase. containerd
// reports only eth0 to the kubelet, so this is where nri-cni's addresses show.
func printStatus(w io.Writer, cfg *config.Config) error {
	records, listErr := state.ReadRecords(cfg.StateDir)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tSANDBOX\tNETWORK\tINTERFACE\tADDRESSES\tPHASE")
	for _, sb := range records {
		for _, att := range sb.Attachments {
			fmt.Fprintf(tw, "%s/%s\t%.13s\t%s\t%s\t%s\t%s\n", sb.Namespace, sb.Name, sb.ID,
				att.Network, att.IfName, addresses(att.Result), att.Phase)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return listErr
}

// addresses returns the IP addresses of a CNI result, comma-separated.
func addresses(result json.RawMessage) string {
	var parsed struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if len(result) == 0 || json.Unmarshal(result, &parsed) != nil || len(parsed.IPs) == 0 {
		return "-"
	}
	ips := make([]string, len(parsed.IPs))
	for i, ip := range parsed.IPs {
		ips[i] = ip.Address
	}
	return strings.Join(ips, ",")
}
