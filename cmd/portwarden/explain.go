package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

func newExplainCmd(g *globals) *cobra.Command {
	var from, to, iface, protocol string
	var port uint16
	cmd := &cobra.Command{
		Use:   "explain --from ADDR|PREFIX [--port N] [--protocol tcp|udp] [--interface IF] [--to DEST]",
		Short: "Say what the policy does with a packet, and which rule (file:line) decides",
		Long: `Say what the policy does with a packet, and which rule (file:line) decides.

--from takes one address or a prefix: for a prefix, explain answers for every
address in it, with one verdict or the sub-ranges that get different ones.
A loopback source (127.0.0.1, ::1) arrives on the loopback interface, as the
kernel routes it, unless --interface says otherwise.`,
		Example: `  portwarden --policy /etc/portwarden explain --from 198.51.100.7
  portwarden --policy /etc/portwarden explain --from 2001:db8::7 --port 27 --protocol tcp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, prefix, err := parseFrom(from)
			if err != nil {
				return withCode(exitError1, err)
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
			out := cmd.OutOrStdout()
			if prefix.IsValid() {
				return explainRange(out, g.json, rs, pkt, prefix)
			}
			d := rs.Decide(pkt)
			if g.json {
				return printJSON(out, map[string]any{"format_version": formatVersion, "packet": pkt, "decision": d})
			}
			fmt.Fprintf(out, "%s from %s to port %d%s: %s\n", pkt.Protocol, pkt.Source, pkt.Port, onInterface(pkt), d.Verdict)
			writeDecision(out, "  ", d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source address or prefix (required)")
	f.Uint16Var(&port, "port", 0, "destination port (default: the first managed port)")
	f.StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	f.StringVar(&iface, "interface", "", "input interface (default: any)")
	f.StringVar(&to, "to", "", "destination address (default: any local address)")
	cmd.MarkFlagRequired("from")
	return cmd
}

// parseFrom reads --from: an address, or a prefix (prefix then valid). A
// prefix of one address is that address.
func parseFrom(from string) (netip.Addr, netip.Prefix, error) {
	if a, err := netip.ParseAddr(from); err == nil {
		return a, netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(from)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("--from %q is not an IP address or prefix (like 198.18.10.7 or 198.18.10.0/24)", from)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr(), netip.Prefix{}, nil
	}
	return p.Addr(), p, nil
}

// onInterface names the packet's interface, and says when it is loopback
// because the source is.
func onInterface(pkt rules.Packet) string {
	switch {
	case pkt.Interface != "":
		return " on " + pkt.Interface
	case pkt.Source.Unmap().IsLoopback():
		return " on " + rules.LoopbackInterface + " (a loopback source arrives there)"
	}
	return ""
}

func writeDecision(out io.Writer, indent string, d rules.Decision) {
	if d.Verdict == rules.Pass {
		fmt.Fprintf(out, "%sno expose manages this port: portwarden leaves the packet alone\n", indent)
		return
	}
	fmt.Fprintf(out, "%sexpose %q", indent, d.Exposure)
	if o := d.Origin; o != nil {
		fmt.Fprintf(out, ", %s", o.Describe())
	}
	if !d.Until.IsZero() {
		fmt.Fprintf(out, ", until %s (the kernel refuses the source from then on)", d.Until.Format(time.RFC3339))
	}
	fmt.Fprintln(out)
	if d.Line != nil {
		fmt.Fprintf(out, "%sthe source is listed at %s:%d\n", indent, d.Line.Filename, d.Line.Start.Line)
	}
}

// maxRanges bounds the sub-ranges explain prints; JSON carries them all.
const maxRanges = 50

// explainRange answers for every source of a prefix.
func explainRange(out io.Writer, asJSON bool, rs *rules.Ruleset, pkt rules.Packet, from netip.Prefix) error {
	ranges := rs.DecideRange(pkt, from)
	if asJSON {
		pkt.Source = netip.Addr{}
		return printJSON(out, map[string]any{"packet": pkt, "from": from, "ranges": ranges})
	}
	if len(ranges) == 1 {
		fmt.Fprintf(out, "%s from %s (all %s addresses) to port %d%s: %s\n", pkt.Protocol, from, size(from), pkt.Port, onInterface(rules.Packet{Interface: pkt.Interface, Source: from.Addr()}), ranges[0].Decision.Verdict)
		writeDecision(out, "  ", ranges[0].Decision)
		return nil
	}
	fmt.Fprintf(out, "%s from %s to port %d: %d sub-ranges get different answers\n", pkt.Protocol, from, pkt.Port, len(ranges))
	for i, r := range ranges {
		if i == maxRanges {
			fmt.Fprintf(out, "  ... and %d more (--json lists them all)\n", len(ranges)-maxRanges)
			break
		}
		fmt.Fprintf(out, "  %s: %s\n", rangeString(r), r.Decision.Verdict)
		writeDecision(out, "    ", r.Decision)
	}
	return nil
}

// rangeString writes a range as its prefix when it is one, else first-last.
func rangeString(r rules.RangeDecision) string {
	if len(r.Prefixes) == 1 {
		return rules.SourceString(r.Prefixes[0])
	}
	return r.From.String() + "-" + r.To.String()
}

// size is the number of addresses in a prefix, in words for huge ones.
func size(p netip.Prefix) string {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 63 {
		return fmt.Sprintf("2^%d", host)
	}
	return strconv.FormatUint(uint64(1)<<host, 10)
}
