package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

func newExplainCmd(g *globals) *cobra.Command {
	var from, to, iface, protocol string
	var port portValue
	cmd := &cobra.Command{
		Use:   "explain --from ADDR|PREFIX [--port N] [--protocol tcp|udp] [--interface IF] [--to DEST]",
		Short: "Say what the policy does with a packet, and which rule (file:line) decides",
		Long: `Say what the policy does with a packet, and which rule (file:line) decides.

--from takes one address or a prefix: for a prefix, explain answers for every
address in it, with one verdict or the sub-ranges that get different ones.
A loopback source (127.0.0.1, ::1) arrives on the loopback interface, as the
kernel routes it, unless --interface says otherwise.

Without --port, explain answers for every port the policy manages (of
--protocol, when given), one answer per port or range of ports that gets
the same one; without --protocol, for tcp and udp.`,
		Example: `  portwarden --policy /etc/portwarden explain --from 198.51.100.7
  portwarden --policy /etc/portwarden explain --from 2001:db8::7 --port 27 --protocol tcp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, prefix, ok := rules.ParseSource(from)
			if !ok {
				return withCode(exitError1, fmt.Errorf("--from %q is not an IP address or prefix (like 198.18.10.7 or 198.18.10.0/24)", from))
			}
			protocols := []rules.Protocol{rules.TCP, rules.UDP}
			if cmd.Flags().Changed("protocol") {
				p := rules.Protocol(protocol)
				if p != rules.TCP && p != rules.UDP {
					return withCode(exitError1, fmt.Errorf("--protocol %q: use tcp or udp", protocol))
				}
				protocols = []rules.Protocol{p}
			}
			base := rules.Packet{Source: src.Unmap(), Interface: iface}
			if to != "" {
				var err error
				if base.Destination, err = netip.ParseAddr(to); err != nil {
					return withCode(exitError1, fmt.Errorf("--to %q is not an IP address", to))
				}
			}
			_, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if prefix.IsValid() {
				return printRange(out, g.json, rs, prefix, protocols, rs.ExplainRange(base, prefix, protocols, uint16(port)))
			}
			answers := rs.Explain(base, protocols, uint16(port))
			if g.json {
				doc := map[string]any{"format_version": formatVersion, "answers": answers}
				if len(answers) == 1 {
					doc["packet"], doc["decision"] = answers[0].Packet, answers[0].Decision
				}
				return printJSON(out, doc)
			}
			if len(answers) == 0 {
				writeNothingManaged(out, base.Source.String(), protocols)
				return nil
			}
			for _, a := range answers {
				fmt.Fprintf(out, "%s from %s to %s%s: %s\n", a.Packet.Protocol, a.Packet.Source, portWords(a.Ports), onInterface(a.Packet), a.Decision.Verdict)
				writeDecision(out, "  ", *a.Decision, rs.ManagesPort(a.Packet.Protocol, a.Packet.Port))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source address or prefix (required)")
	f.Var(&port, "port", "destination port, 1-65535 (default: every port the policy manages)")
	f.StringVar(&protocol, "protocol", "", "tcp or udp (default: both)")
	f.StringVar(&iface, "interface", "", "input interface (default: any)")
	f.StringVar(&to, "to", "", "destination address (default: any local address)")
	cmd.MarkFlagRequired("from")
	return cmd
}

// portValue is --port: a port number from 1 to 65535. Port 0 is no port:
// no expose can manage it, and a packet cannot be sent to it; so the zero
// value, --port not given, is what asks rules.Explain for every port.
type portValue uint16

func (p *portValue) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

func (p *portValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("a port is a number from 1 to 65535")
	}
	*p = portValue(n)
	return nil
}

func (p *portValue) Type() string { return "N" }

// portWords writes "port 27" or "ports 8000-8010".
func portWords(r rules.PortRange) string {
	if r.First == r.Last {
		return fmt.Sprintf("port %d", r.First)
	}
	return fmt.Sprintf("ports %d-%d", r.First, r.Last)
}

// writeNothingManaged answers when no expose manages a port of the
// protocols asked about.
func writeNothingManaged(out io.Writer, from string, protocols []rules.Protocol) {
	if len(protocols) == 1 {
		fmt.Fprintf(out, "%s from %s: %s\n  no expose manages a %s port: portwarden leaves these packets alone\n", protocols[0], from, rules.Pass, protocols[0])
		return
	}
	fmt.Fprintf(out, "from %s: %s\n  no expose manages any port: portwarden leaves every packet alone\n", from, rules.Pass)
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

// writeDecision says what decides; managed: an expose manages the
// packet's protocol and port (so a pass comes from its interfaces or
// destinations).
func writeDecision(out io.Writer, indent string, d rules.Decision, managed bool) {
	if d.Verdict == rules.Pass && managed {
		fmt.Fprintf(out, "%sthe exposes that manage this port take other interfaces or destinations: portwarden leaves the packet alone\n", indent)
		return
	}
	if d.Verdict == rules.Pass {
		fmt.Fprintf(out, "%sno expose manages this port: portwarden leaves the packet alone\n", indent)
		return
	}
	if d.Expired != nil {
		writeExpired(out, indent, d)
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

// writeExpired says that a source gets the default because the access an
// allow block (or a list file line) gave it ended, and when.
func writeExpired(out io.Writer, indent string, d rules.Decision) {
	x := d.Expired
	fmt.Fprintf(out, "%sexpose %q, the expose's default", indent, d.Exposure)
	if d.Origin != nil && d.Origin.Range.Filename != "" {
		fmt.Fprintf(out, " at %s", d.Origin.Range)
	}
	fmt.Fprintln(out, ": the source's access expired")
	until := x.Until.Format(time.RFC3339)
	ago := rules.HumanDuration(time.Since(x.Until)) + " ago"
	switch {
	case x.Deadline == rules.DeadlineLine && x.Line != nil:
		fmt.Fprintf(out, "%s%s admitted it until %s (expires= at %s:%d, %s)\n", indent, x.Origin.Describe(), until, x.Line.Filename, x.Line.Start.Line, ago)
	default:
		fmt.Fprintf(out, "%s%s admitted it until %s (the block's expires, %s)\n", indent, x.Origin.Describe(), until, ago)
		if x.Line != nil {
			fmt.Fprintf(out, "%sthe source is listed at %s:%d\n", indent, x.Line.Filename, x.Line.Start.Line)
		}
	}
}

// maxRanges bounds the sub-ranges explain prints; JSON carries them all.
const maxRanges = 50

// printRange prints the answers for every source of a prefix.
func printRange(out io.Writer, asJSON bool, rs *rules.Ruleset, from netip.Prefix, protocols []rules.Protocol, answers []rules.Explanation) error {
	if asJSON {
		doc := map[string]any{"from": from, "answers": answers}
		if len(answers) == 1 {
			doc["packet"], doc["ranges"] = answers[0].Packet, answers[0].Ranges
		}
		return printJSON(out, doc)
	}
	if len(answers) == 0 {
		writeNothingManaged(out, from.String(), protocols)
		return nil
	}
	for _, a := range answers {
		writeRanges(out, a, from, rs.ManagesPort(a.Packet.Protocol, a.Packet.Port))
	}
	return nil
}

// writeRanges writes one answer for a prefix.
func writeRanges(out io.Writer, a rules.Explanation, from netip.Prefix, managed bool) {
	pkt, ranges := a.Packet, a.Ranges
	if len(ranges) == 1 {
		fmt.Fprintf(out, "%s from %s (all %s addresses) to %s%s: %s\n", pkt.Protocol, from, size(from), portWords(a.Ports), onInterface(rules.Packet{Interface: pkt.Interface, Source: from.Addr()}), ranges[0].Decision.Verdict)
		writeDecision(out, "  ", ranges[0].Decision, managed)
		return
	}
	fmt.Fprintf(out, "%s from %s to %s: %d sub-ranges get different answers\n", pkt.Protocol, from, portWords(a.Ports), len(ranges))
	for i, r := range ranges {
		if i == maxRanges {
			fmt.Fprintf(out, "  ... and %d more (--json lists them all)\n", len(ranges)-maxRanges)
			break
		}
		fmt.Fprintf(out, "  %s: %s\n", rangeString(r), r.Decision.Verdict)
		writeDecision(out, "    ", r.Decision, managed)
	}
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
