package rules

import (
	"net/netip"
	"slices"

	"github.com/portwarden/portwarden/policies"
	"go4.org/netipx"
)

// LoopbackInterface is the interface loopback traffic arrives on.
const LoopbackInterface = "lo"

// Decide tells what the Ruleset does with a packet, in the evaluation order
// documented on Exposure, and which block decided it. A packet from a
// loopback address (127.0.0.0/8, ::1) with no interface given arrives on
// the loopback interface, as the kernel routes it.
func (rs *Ruleset) Decide(pkt Packet) Decision {
	src := pkt.Source.Unmap()
	if pkt.Interface == "" && src.IsLoopback() {
		pkt.Interface = LoopbackInterface
	}
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		if !e.matches(pkt) {
			continue
		}
		switch {
		case e.Loopback && pkt.Interface == LoopbackInterface:
			return e.decision(Accept, OriginLoopback, src)
		case e.Deny.Contains(src):
			return e.decision(e.Default, OriginDeny, src)
		case e.Allow.Contains(src):
			return e.decision(Accept, OriginAllow, src)
		}
		if g := e.GrantFor(src); g != nil {
			d := e.decision(Accept, OriginAllow, src)
			d.Until = g.Until
			return d
		}
		d := e.decision(e.Default, OriginDefault, src)
		d.Expired = e.expiredFor(src)
		return d
	}
	return Decision{Verdict: Pass}
}

// expiredFor is the access to src that ended before the policy was
// loaded, nil when none did: the allow block whose deadline came last
// among those that listed src (the first such block on a tie).
func (e *Exposure) expiredFor(src netip.Addr) *Expired {
	var out *Expired
	for i := range e.Origins {
		o := &e.Origins[i]
		if o.Kind != OriginAllow {
			continue
		}
		for _, l := range o.Lapsed {
			if l.Prefix < 0 || l.Prefix >= len(o.Prefixes) || !o.Prefixes[l.Prefix].Contains(src) {
				continue
			}
			if out == nil || l.Until.After(out.Until) {
				out = &Expired{Origin: o, Line: o.line(l.Prefix), Until: l.Until, Deadline: DeadlineBlock}
				if l.ByLine {
					out.Deadline = DeadlineLine
				}
			}
		}
	}
	return out
}

// matches reports whether the exposure manages the packet: protocol, port,
// interface and destination.
func (e *Exposure) matches(pkt Packet) bool {
	if pkt.Protocol != e.Protocol || !ContainsPort(e.Ports, pkt.Port) {
		return false
	}
	if pkt.Interface != "" && len(e.Interfaces) > 0 && !slices.Contains(e.Interfaces, pkt.Interface) {
		return false
	}
	if pkt.Destination.IsValid() && !e.Destinations.Empty() && !e.Destinations.Contains(pkt.Destination) {
		return false
	}
	if !e.Destinations.Empty() && !pkt.Destination.IsValid() {
		// Without a destination, only the source's family can match.
		return len(e.Destinations.Family(familyOf(pkt.Source))) > 0
	}
	return true
}

func familyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 4
	}
	return 6
}

func (e *Exposure) decision(v Verdict, kind string, src netip.Addr) Decision {
	d := Decision{Verdict: v, Exposure: e.Name}
	if (kind == OriginAllow || kind == OriginDeny) && e.index != nil && e.index.origins == len(e.Origins) {
		if at := e.index.lookup(e.Origins, kind, src); at.origin >= 0 {
			d.Origin = &e.Origins[at.origin]
			d.Line = d.Origin.line(at.prefix)
		}
		return d
	}
	for i := range e.Origins {
		o := &e.Origins[i]
		if o.Kind != kind {
			continue
		}
		if kind == OriginAllow || kind == OriginDeny {
			j := slices.IndexFunc(o.Prefixes, func(p netip.Prefix) bool { return p.Contains(src) })
			if j < 0 {
				continue
			}
			d.Line = o.line(j)
		}
		d.Origin = o
		break
	}
	return d
}

// line is the list file line of the i-th prefix, nil when it was written
// in the policy.
func (o *Origin) line(i int) *SourceRange {
	if i < 0 || i >= len(o.Lines) || o.Lines[i].Line == 0 || int(o.Lines[i].File) >= len(o.ListFiles) {
		return nil
	}
	l := o.Lines[i]
	pos := policies.SourcePos{Line: int(l.Line), Column: 1}
	return &SourceRange{Filename: o.ListFiles[l.File], Start: pos, End: pos}
}

// SamplePacket is a packet from src to the exposure's first port and, when
// the exposure is limited to destinations, its first destination of src's
// family.
func (e *Exposure) SamplePacket(src netip.Addr) Packet {
	pkt := Packet{Protocol: e.Protocol, Source: src}
	if len(e.Ports) > 0 {
		pkt.Port = e.Ports[0].First
	}
	if ds := e.Destinations.Family(familyOf(src)); len(ds) > 0 {
		pkt.Destination = ds[0].Addr()
	}
	return pkt
}

// TestResult is the outcome of one policy test block against a Ruleset.
type TestResult struct {
	Test     *policies.Test `json:"-"`
	Name     string         `json:"name"`
	Packet   Packet         `json:"packet"`
	Decision Decision       `json:"decision"`
	Expect   string         `json:"expect"`
	Pass     bool           `json:"pass"`
	// Problem explains a test that could not be evaluated (its expose is
	// missing from the Ruleset).
	Problem string `json:"problem,omitempty"`
}

// Expected reports whether a verdict satisfies a test's expect value. Pass
// satisfies "allow": portwarden leaves an unmanaged packet alone, so a real
// probe gets through, and verification must agree with the offline test.
func Expected(expect string, v Verdict) bool {
	switch expect {
	case "allow":
		return v == Accept || v == Pass
	case "deny":
		return v == Drop || v == Reject
	}
	return false
}

// TestPacket is the packet a policy test block describes.
func TestPacket(t *policies.Test, rs *Ruleset) (Packet, bool) {
	e := rs.Exposure(t.To)
	if e == nil {
		return Packet{}, false
	}
	pkt := e.SamplePacket(t.From)
	if t.Port != 0 {
		pkt.Port = t.Port
	}
	if t.Protocol != "" {
		pkt.Protocol = Protocol(t.Protocol)
	}
	pkt.Interface = t.Interface
	if pkt.Interface == "" && len(e.Interfaces) > 0 {
		pkt.Interface = e.Interfaces[0]
	}
	return pkt, true
}

// RunTests evaluates every test block of the policy against rs.
func RunTests(p *policies.Policy, rs *Ruleset) []TestResult {
	out := make([]TestResult, 0, len(p.Tests))
	for _, t := range p.Tests {
		r := TestResult{Test: t, Name: t.Name, Expect: t.Expect}
		pkt, ok := TestPacket(t, rs)
		if !ok {
			r.Problem = "expose " + t.To + " is not in the ruleset"
			out = append(out, r)
			continue
		}
		r.Packet = pkt
		r.Decision = rs.Decide(pkt)
		r.Pass = Expected(t.Expect, r.Decision.Verdict)
		out = append(out, r)
	}
	return out
}

// BoundarySources are the addresses where a verdict can change: for every
// allow and deny prefix, its first and last address and the addresses just
// outside it. Sorted and unique.
func BoundarySources(rs *Ruleset) []netip.Addr {
	var out []netip.Addr
	for _, e := range rs.Exposures {
		ps := append(e.Allow.All(), e.Deny.All()...)
		for _, g := range e.Expiring {
			ps = append(ps, g.Source)
		}
		for _, p := range ps {
			first := p.Masked().Addr()
			last := lastAddr(p)
			out = append(out, first, last)
			if prev := first.Prev(); prev.IsValid() {
				out = append(out, prev)
			}
			if next := last.Next(); next.IsValid() {
				out = append(out, next)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

func lastAddr(p netip.Prefix) netip.Addr { return netipx.RangeOfPrefix(p).To() }
