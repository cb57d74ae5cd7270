package rules

import (
	"net/netip"
	"slices"
)

// Explanation is the answer for one protocol and range of ports: Packet
// is the packet asked about, to the first of Ports; Decision (one source)
// or Ranges (a prefix) the answer for every port of Ports.
type Explanation struct {
	Packet   Packet          `json:"packet"`
	Ports    PortRange       `json:"ports"`
	Decision *Decision       `json:"decision,omitempty"`
	Ranges   []RangeDecision `json:"ranges,omitempty"`
}

// Explain decides base, its protocol and port ignored, for port (0: for
// every port the Ruleset manages) of each of protocols, in protocol and
// port order; a protocol that does not manage port is left out unless
// none does. Neighbouring ports that get the same decision are one
// Explanation.
func (rs *Ruleset) Explain(base Packet, protocols []Protocol, port uint16) []Explanation {
	return rs.explain(base, protocols, port,
		func(x *Explanation) {
			d := rs.Decide(x.Packet)
			x.Decision = &d
		},
		func(a, b *Explanation) bool { return a.Decision.Same(*b.Decision) })
}

// ExplainRange is Explain for every source of from (base's source
// ignored, as DecideRange does): each Explanation carries Ranges.
func (rs *Ruleset) ExplainRange(base Packet, from netip.Prefix, protocols []Protocol, port uint16) []Explanation {
	base.Source = netip.Addr{}
	return rs.explain(base, protocols, port,
		func(x *Explanation) { x.Ranges = rs.DecideRange(x.Packet, from) },
		func(a, b *Explanation) bool { return sameRanges(a.Ranges, b.Ranges) })
}

// explain answers each port question with answer, merging an answer into
// the one before when its ports follow on and same says they agree.
func (rs *Ruleset) explain(base Packet, protocols []Protocol, port uint16, answer func(*Explanation), same func(a, b *Explanation) bool) []Explanation {
	// Not nil: no answer at all is an empty list in JSON, not null.
	out := []Explanation{}
	for _, q := range rs.portQuestions(protocols, port) {
		pkt := base
		pkt.Protocol, pkt.Port = q.protocol, q.ports.First
		x := Explanation{Packet: pkt, Ports: q.ports}
		answer(&x)
		if n := len(out); n > 0 && continues(out[n-1], q) && same(&out[n-1], &x) {
			out[n-1].Ports.Last = q.ports.Last
			continue
		}
		out = append(out, x)
	}
	return out
}

// portQuestion is one protocol and a range of ports that gets one
// answer.
type portQuestion struct {
	protocol Protocol
	ports    PortRange
}

// portQuestions are what Explain answers: with a port (not 0), that port
// for each protocol asked about that manages it (each protocol asked
// about when none does: the packet passes); without, every port range the
// policy manages for those protocols, cut where the exposures managing
// them change.
func (rs *Ruleset) portQuestions(protocols []Protocol, port uint16) []portQuestion {
	var qs []portQuestion
	if port != 0 {
		for _, p := range protocols {
			if rs.ManagesPort(p, port) {
				qs = append(qs, portQuestion{p, PortRange{First: port, Last: port}})
			}
		}
		if len(qs) == 0 {
			for _, p := range protocols {
				qs = append(qs, portQuestion{p, PortRange{First: port, Last: port}})
			}
		}
		return qs
	}
	for _, p := range protocols {
		for _, r := range rs.PortSegments(p) {
			qs = append(qs, portQuestion{p, r})
		}
	}
	return qs
}

// continues reports whether q's ports follow on from a's, same protocol.
func continues(a Explanation, q portQuestion) bool {
	return a.Packet.Protocol == q.protocol && int(a.Ports.Last)+1 == int(q.ports.First)
}

// sameRanges reports whether two answers for a prefix are the same.
func sameRanges(a, b []RangeDecision) bool {
	return slices.EqualFunc(a, b, func(x, y RangeDecision) bool {
		return x.From == y.From && x.To == y.To && x.Decision.Same(y.Decision)
	})
}

// ParseSource reads a source given as an address, or as a prefix (prefix
// then valid); ok is false when s is neither. A prefix of one address is
// that address.
func ParseSource(s string) (addr netip.Addr, prefix netip.Prefix, ok bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, netip.Prefix{}, true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, false
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = unmap(p)
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr(), netip.Prefix{}, true
	}
	return p.Addr(), p, true
}
