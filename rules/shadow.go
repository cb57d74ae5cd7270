package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"go4.org/netipx"
)

// PortSegments are the ports exposures of protocol p manage, in order, cut
// wherever the set of exposures that manage them changes: every port of a
// segment gets the same decision for a given source, interface and
// destination.
func (rs *Ruleset) PortSegments(p Protocol) []PortRange {
	var cuts []int // where a segment may start: a range's first port, or the port after its last
	for _, e := range rs.Exposures {
		if e.Protocol != p {
			continue
		}
		for _, r := range e.Ports {
			cuts = append(cuts, int(r.First), int(r.Last)+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var out []PortRange
	for i := 0; i+1 < len(cuts); i++ {
		first, last := uint16(cuts[i]), uint16(cuts[i+1]-1)
		if rs.ManagesPort(p, first) {
			out = append(out, PortRange{First: first, Last: last})
		}
	}
	return out
}

// ManagesPort reports whether an exposure of protocol p manages port.
func (rs *Ruleset) ManagesPort(p Protocol, port uint16) bool {
	return slices.ContainsFunc(rs.Exposures, func(e Exposure) bool { return e.Protocol == p && ContainsPort(e.Ports, port) })
}

// Shadow is an exposure that never decides a packet on some of its ports:
// exposures earlier in name order manage the same ports and between them
// match every packet it would (their interfaces and destinations take in
// the shadowed one's), so they decide them first. Usually one does; two
// can share the work, say one for each interface the shadowed one names.
type Shadow struct {
	Exposure string      // the exposure that never decides these ports
	By       []string    // the exposures that decide them first, in name order
	Protocol Protocol    //
	Ports    []PortRange // the ports, sorted
	// Range and ByRanges are where the expose blocks are written; zero for
	// a Ruleset read back from a kernel.
	Range    hcl.Range
	ByRanges []hcl.Range
}

// Shadows lists the ports that exposures manage but never decide, because
// earlier exposures match all their packets there: one alone, or several
// between them (one per interface, say). Each shadow names the earlier
// exposures that do decide some of those packets, in name order. A
// partial overlap (the earlier exposures take fewer interfaces or
// destinations, so the later one still decides some packets on the port)
// is not a shadow. rs is normalised (sorted by name, as Compile makes it).
func (rs *Ruleset) Shadows() []Shadow {
	var out []Shadow
	dests := map[*Exposure]*netipx.IPSet{}
	for j := range rs.Exposures {
		b := &rs.Exposures[j]
		// The earlier exposures that might share a packet with b: same
		// protocol, and a port, an interface and a destination in common.
		var earlier []*Exposure
		cuts := []int{}
		for i := 0; i < j; i++ {
			a := &rs.Exposures[i]
			if a.Protocol != b.Protocol || !shareInterface(a, b) || !portsOverlap(b.Ports, a.Ports) || !destinationSet(dests, a).Overlaps(destinationSet(dests, b)) {
				continue
			}
			earlier = append(earlier, a)
			for _, r := range a.Ports {
				cuts = append(cuts, int(r.First), int(r.Last)+1)
			}
		}
		if len(earlier) == 0 {
			continue
		}
		// b's ports cut wherever the earlier exposures managing them
		// change; shadowed pieces with the same deciders are one Shadow.
		first := map[string]int{} // deciders' names -> index in out
		for _, r := range b.Ports {
			pieces := []int{int(r.First), int(r.Last) + 1}
			for _, c := range cuts {
				if c > int(r.First) && c <= int(r.Last) {
					pieces = append(pieces, c)
				}
			}
			slices.Sort(pieces)
			pieces = slices.Compact(pieces)
			for k := 0; k+1 < len(pieces); k++ {
				piece := PortRange{First: uint16(pieces[k]), Last: uint16(pieces[k+1] - 1)}
				var on []*Exposure
				for _, a := range earlier {
					if ContainsPort(a.Ports, piece.First) {
						on = append(on, a)
					}
				}
				by := deciders(dests, on, b)
				if by == nil {
					continue
				}
				names := make([]string, len(by))
				for i, a := range by {
					names[i] = a.Name
				}
				key := strings.Join(names, "\x00")
				if n, ok := first[key]; ok {
					out[n].Ports = normalizePorts(append(out[n].Ports, piece))
					continue
				}
				ranges := make([]hcl.Range, len(by))
				for i, a := range by {
					ranges[i] = a.declRange()
				}
				first[key] = len(out)
				out = append(out, Shadow{Exposure: b.Name, By: names, Protocol: b.Protocol, Ports: []PortRange{piece}, Range: b.declRange(), ByRanges: ranges})
			}
		}
	}
	return out
}

// deciders returns, when the exposures on (in name order, all managing
// the port) match every packet b matches, those of them that decide some
// of those packets: each that matches a packet of b none before it does.
// nil when some packet of b is left to b. For each interface b names the
// destinations of b are taken away by each exposure that takes that
// interface in, in turn. When b names none it matches on any interface:
// one nobody names ("", which only exposures that name none take in)
// decides whether b is shadowed, and each interface the others name says
// who decides there.
func deciders(dests map[*Exposure]*netipx.IPSet, on []*Exposure, b *Exposure) []*Exposure {
	ifaces := b.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{""}
		for _, e := range on {
			for _, name := range e.Interfaces {
				if !slices.Contains(ifaces, name) {
					ifaces = append(ifaces, name)
				}
			}
		}
	}
	decides := make([]bool, len(on))
	for _, name := range ifaces {
		left := destinationSet(dests, b)
		for i, e := range on {
			if len(e.Interfaces) > 0 && (name == "" || !slices.Contains(e.Interfaces, name)) {
				continue
			}
			ed := destinationSet(dests, e)
			if !left.Overlaps(ed) {
				continue
			}
			decides[i] = true
			var sb netipx.IPSetBuilder
			sb.AddSet(left)
			sb.RemoveSet(ed)
			next, err := sb.IPSet()
			if err != nil {
				return nil
			}
			left = next
		}
		if len(left.Ranges()) > 0 {
			return nil
		}
	}
	var out []*Exposure
	for i, e := range on {
		if decides[i] {
			out = append(out, e)
		}
	}
	return out
}

// shareInterface reports whether a packet can arrive on an interface both
// exposures match: one of them names none, or they name one in common.
func shareInterface(a, b *Exposure) bool {
	if len(a.Interfaces) == 0 || len(b.Interfaces) == 0 {
		return true
	}
	return slices.ContainsFunc(a.Interfaces, func(name string) bool { return slices.Contains(b.Interfaces, name) })
}

// destinationSet is e's destinations as a set, every address of both
// families when it has none, built once per exposure.
func destinationSet(cache map[*Exposure]*netipx.IPSet, e *Exposure) *netipx.IPSet {
	if set, ok := cache[e]; ok {
		return set
	}
	var sb netipx.IPSetBuilder
	all := e.Destinations.All()
	if len(all) == 0 {
		all = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	for _, p := range all {
		sb.AddPrefix(p)
	}
	set, err := sb.IPSet()
	if err != nil {
		set = &netipx.IPSet{}
	}
	cache[e] = set
	return set
}

// declRange is where the expose block is written: the range of its
// default origin (Compile gives every exposure one), zero without origins.
func (e *Exposure) declRange() hcl.Range {
	for _, o := range e.Origins {
		if o.Kind == OriginDefault {
			return o.Range
		}
	}
	return hcl.Range{}
}

// portsOverlap reports whether a port is in both lists.
func portsOverlap(a, b []PortRange) bool {
	for _, x := range a {
		for _, y := range b {
			if max(x.First, y.First) <= min(x.Last, y.Last) {
				return true
			}
		}
	}
	return false
}

// PortsString writes ports as "tcp/27" or "tcp/22, tcp/8000-8010".
func PortsString(p Protocol, ports []PortRange) string {
	parts := make([]string, 0, len(ports))
	for _, r := range ports {
		s := fmt.Sprintf("%s/%d", p, r.First)
		if r.Last != r.First {
			s += fmt.Sprintf("-%d", r.Last)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// ShadowDiagnostics are warnings, one per shadowed exposure and the
// exposure that shadows it, pointing at the shadowed expose block.
func (rs *Ruleset) ShadowDiagnostics() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range rs.Shadows() {
		by := make([]string, len(s.By))
		for i, name := range s.By {
			by[i] = fmt.Sprintf("expose %q", name)
			if r := s.ByRanges[i]; r.Filename != "" {
				by[i] += fmt.Sprintf(" (%s:%d)", r.Filename, r.Start.Line)
			}
		}
		decide := "decides them first"
		if len(by) > 1 {
			decide = "decide them first between them"
		}
		d := &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Expose never decides",
			Detail: fmt.Sprintf("expose %q never decides a packet on %s: %s %s (exposures are evaluated in name order); give them different ports, interfaces or destinations.",
				s.Exposure, PortsString(s.Protocol, s.Ports), joinAnd(by), decide),
		}
		if s.Range.Filename != "" {
			d.Subject = s.Range.Ptr()
		}
		diags = append(diags, d)
	}
	return diags
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
