package rules

import (
	"fmt"
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
// an exposure earlier in name order manages the same ports and matches
// every packet it would (its interfaces and destinations take in the
// shadowed one's), so it decides them first.
type Shadow struct {
	Exposure string      // the exposure that never decides these ports
	By       string      // the exposure that decides them first
	Protocol Protocol    //
	Ports    []PortRange // the ports, sorted
	// Range and ByRange are where the two expose blocks are written; zero
	// for a Ruleset read back from a kernel.
	Range, ByRange hcl.Range
}

// Shadows lists the ports that exposures manage but never decide, because
// one earlier exposure matches all their packets there. A partial overlap
// (the earlier exposure takes fewer interfaces or destinations, so the
// later one still decides some packets on the port) is not a shadow.
// rs is normalised (sorted by name, as Compile makes it).
func (rs *Ruleset) Shadows() []Shadow {
	var out []Shadow
	for j := range rs.Exposures {
		b := &rs.Exposures[j]
		left := b.Ports // ports of b no earlier exposure has shadowed yet
		for i := 0; i < j && len(left) > 0; i++ {
			a := &rs.Exposures[i]
			if a.Protocol != b.Protocol || !a.takesIn(b) {
				continue
			}
			both := intersectPorts(left, a.Ports)
			if len(both) == 0 {
				continue
			}
			out = append(out, Shadow{Exposure: b.Name, By: a.Name, Protocol: b.Protocol, Ports: both, Range: b.declRange(), ByRange: a.declRange()})
			left = subtractPorts(left, both)
		}
	}
	return out
}

// takesIn reports whether every packet b matches on a port both manage
// matches e too: e has no interfaces or all of b's, and no destinations or
// all of b's.
func (e *Exposure) takesIn(b *Exposure) bool {
	if len(e.Interfaces) > 0 {
		if len(b.Interfaces) == 0 {
			return false
		}
		for _, name := range b.Interfaces {
			if !slices.Contains(e.Interfaces, name) {
				return false
			}
		}
	}
	if e.Destinations.Empty() {
		return true
	}
	if b.Destinations.Empty() {
		return false
	}
	var sb netipx.IPSetBuilder
	for _, p := range e.Destinations.All() {
		sb.AddPrefix(p)
	}
	set, err := sb.IPSet()
	if err != nil {
		return false
	}
	for _, p := range b.Destinations.All() {
		if !set.ContainsPrefix(p) {
			return false
		}
	}
	return true
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

// intersectPorts is the ports in both sorted, merged lists.
func intersectPorts(a, b []PortRange) []PortRange {
	var out []PortRange
	for _, x := range a {
		for _, y := range b {
			first, last := max(x.First, y.First), min(x.Last, y.Last)
			if first <= last {
				out = append(out, PortRange{First: first, Last: last})
			}
		}
	}
	return normalizePorts(out)
}

// subtractPorts is the ports of a not in b.
func subtractPorts(a, b []PortRange) []PortRange {
	var out []PortRange
	for _, x := range a {
		rest := []PortRange{x}
		for _, y := range b {
			var next []PortRange
			for _, r := range rest {
				if y.Last < r.First || y.First > r.Last {
					next = append(next, r)
					continue
				}
				if y.First > r.First {
					next = append(next, PortRange{First: r.First, Last: y.First - 1})
				}
				if y.Last < r.Last {
					next = append(next, PortRange{First: y.Last + 1, Last: r.Last})
				}
			}
			rest = next
		}
		out = append(out, rest...)
	}
	return normalizePorts(out)
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
		by := fmt.Sprintf("expose %q", s.By)
		if s.ByRange.Filename != "" {
			by += fmt.Sprintf(" (%s:%d)", s.ByRange.Filename, s.ByRange.Start.Line)
		}
		d := &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Expose never decides",
			Detail: fmt.Sprintf("expose %q never decides a packet on %s: %s decides them first (exposures are evaluated in name order); give them different ports, interfaces or destinations.",
				s.Exposure, PortsString(s.Protocol, s.Ports), by),
		}
		if s.Range.Filename != "" {
			d.Subject = s.Range.Ptr()
		}
		diags = append(diags, d)
	}
	return diags
}
