package main

import (
	"fmt"
	"net/netip"

	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

func newExplainCmd(g *globals) *cobra.Command {
	var from, to, iface, protocol string
	var port uint16
	cmd := &cobra.Command{
		Use:   "explain --from ADDR [--port N] [--protocol tcp|udp] [--interface IF] [--to DEST]",
		Short: "Say what the policy does with a packet, and which rule (file:line) decides",
		Example: `  portwarden --policy /etc/portwarden explain --from 198.51.100.7
  portwarden --policy /etc/portwarden explain --from 2001:db8::7 --port 27 --protocol tcp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := netip.ParseAddr(from)
			if err != nil {
				return withCode(exitError1, fmt.Errorf("--from %q is not an IP address", from))
			}
			pkt := rules.Packet{Source: src.Unmap(), Protocol: rules.Protocol(protocol), Port: port, Interface: iface}
			if pkt.Protocol != rules.TCP && pkt.Protocol != rules.UDP {
				return withCode(exitError1, fmt.Errorf("--protocol %q: use tcp or udp", protocol))
			}
			if to != "" {
				if pkt.Destination, err = netip.ParseAddr(to); err != nil {
					return withCode(exitError1, fmt.Errorf("--to %q is not an IP address", to))
				}
			}
			_, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("port") {
				// Without --port: the first managed port of the protocol.
				for _, e := range rs.Exposures {
					if e.Protocol == pkt.Protocol && len(e.Ports) > 0 {
						pkt.Port = e.Ports[0].First
						break
					}
				}
			}
			d := rs.Decide(pkt)
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, map[string]any{"format_version": formatVersion, "packet": pkt, "decision": d})
			}
			fmt.Fprintf(out, "%s from %s to port %d", pkt.Protocol, pkt.Source, pkt.Port)
			if pkt.Interface != "" {
				fmt.Fprintf(out, " on %s", pkt.Interface)
			}
			fmt.Fprintf(out, ": %s\n", d.Verdict)
			if d.Verdict == rules.Pass {
				fmt.Fprintln(out, "  no expose manages this port: portwarden leaves the packet alone")
				return nil
			}
			fmt.Fprintf(out, "  expose %q", d.Exposure)
			if o := d.Origin; o != nil {
				fmt.Fprintf(out, ", %s", describeOrigin(o))
			}
			fmt.Fprintln(out)
			if d.Line != nil {
				fmt.Fprintf(out, "  the source is listed at %s:%d\n", d.Line.Filename, d.Line.Start.Line)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source address (required)")
	f.Uint16Var(&port, "port", 0, "destination port (default: the first managed port)")
	f.StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	f.StringVar(&iface, "interface", "", "input interface (default: any)")
	f.StringVar(&to, "to", "", "destination address (default: any local address)")
	cmd.MarkFlagRequired("from")
	return cmd
}

func describeOrigin(o *rules.Origin) string { return o.Describe() }
