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
// earlier exposures match all their packets there: the first one that
// does alone is named, else the earlier exposures on the port that do
// together. A partial overlap (the earlier exposures take fewer
// interfaces or destinations, so the later one still decides some
// packets on the port) is not a shadow. rs is normalised (sorted by name,
// as Compile makes it).
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
			out = append(out, Shadow{Exposure: b.Name, By: []string{a.Name}, Protocol: b.Protocol, Ports: both, Range: b.declRange(), ByRanges: []hcl.Range{a.declRange()}})
			left = subtractPorts(left, both)
		}
		out = append(out, rs.sharedShadows(j, left)...)
	}
	return out
}

// sharedShadows finds, on the ports left of exposure j, where several
// earlier exposures take it in between them. The ports are cut wherever
// the set of earlier exposures managing them changes; adjacent pieces
// shadowed by the same exposures are one Shadow.
func (rs *Ruleset) sharedShadows(j int, left []PortRange) []Shadow {
	b := &rs.Exposures[j]
	var earlier []*Exposure
	cuts := []int{}
	for i := 0; i < j; i++ {
		if a := &rs.Exposures[i]; a.Protocol == b.Protocol && len(intersectPorts(left, a.Ports)) > 0 {
			earlier = append(earlier, a)
			for _, r := range a.Ports {
				cuts = append(cuts, int(r.First), int(r.Last)+1)
			}
		}
	}
	if len(earlier) < 2 {
		return nil
	}
	var out []Shadow
	for _, r := range left {
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
			if len(on) < 2 || !takeInTogether(on, b) {
				continue
			}
			on = needed(on, b)
			names := make([]string, len(on))
			for i, a := range on {
				names[i] = a.Name
			}
			if n := len(out); n > 0 && slices.Equal(out[n-1].By, names) {
				ports := &out[n-1].Ports
				if last := &(*ports)[len(*ports)-1]; int(last.Last)+1 == int(piece.First) {
					last.Last = piece.Last
				} else {
					*ports = append(*ports, piece)
				}
				continue
			}
			ranges := make([]hcl.Range, len(on))
			for i, a := range on {
				ranges[i] = a.declRange()
			}
			out = append(out, Shadow{Exposure: b.Name, By: names, Protocol: b.Protocol, Ports: []PortRange{piece}, Range: b.declRange(), ByRanges: ranges})
		}
	}
	return out
}

// needed drops, last first, each exposure without which the others still
// take b in: only the exposures that decide are named.
func needed(on []*Exposure, b *Exposure) []*Exposure {
	for i := len(on) - 1; i >= 0 && len(on) > 1; i-- {
		rest := slices.Delete(slices.Clone(on), i, i+1)
		if takeInTogether(rest, b) {
			on = rest
		}
	}
	return on
}

// takeInTogether reports whether every packet b matches (on a port all of
// es manage) matches one of es: for each interface b names (or for any
// interface, when it names none), the exposures that take that interface
// in have between them no destinations or all of b's.
func takeInTogether(es []*Exposure, b *Exposure) bool {
	ifaces := b.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{""} // any interface: only exposures that name none take it in
	}
	for _, name := range ifaces {
		var sb netipx.IPSetBuilder
		covered := false
		for _, e := range es {
			if len(e.Interfaces) > 0 && (name == "" || !slices.Contains(e.Interfaces, name)) {
				continue
			}
			if e.Destinations.Empty() {
				covered = true
				break
			}
			for _, p := range e.Destinations.All() {
				sb.AddPrefix(p)
			}
		}
		if covered {
			continue
		}
		set, err := sb.IPSet()
		if err != nil {
			return false
		}
		want := b.Destinations.All()
		if len(want) == 0 {
			want = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}
		for _, p := range want {
			if !set.ContainsPrefix(p) {
				return false
			}
		}
	}
	return true
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
