package iptables

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/portwarden/portwarden/rules"
)

// randomRuleset draws a small Ruleset over a few ports, interfaces and
// sources, so that exposures of two draws overlap in every way.
func randomRuleset(r *rand.Rand) *rules.Ruleset {
	rs := &rules.Ruleset{}
	names := []string{"a", "b", "c"}
	for _, name := range names {
		if r.IntN(3) == 0 {
			continue
		}
		e := rules.Exposure{Name: name, Protocol: rules.TCP, Default: rules.Drop, Loopback: r.IntN(2) == 0}
		first := uint16(20 + r.IntN(6))
		e.Ports = []rules.PortRange{{First: first, Last: first + uint16(r.IntN(3))}}
		if r.IntN(2) == 0 {
			e.Interfaces = []string{[]string{"eth0", "eth1"}[r.IntN(2)]}
		}
		var allow, deny []netip.Prefix
		for range r.IntN(6) {
			allow = append(allow, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 32))
		}
		for range r.IntN(3) {
			deny = append(deny, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 32))
		}
		if r.IntN(3) == 0 {
			allow = append(allow, netip.MustParsePrefix("2001:2::/126"))
		}
		e.Allow, e.Deny = rules.NewPrefixes(allow...), rules.NewPrefixes(deny...)
		rs.Exposures = append(rs.Exposures, e)
	}
	rs.Normalize()
	return rs
}

// The intersection admits no packet that the old or the new Ruleset
// refuses, and manages every port either manages; with the same match on
// both sides it admits exactly what both admit.
func TestIntersectAdmitsOnlyWhatBothAdmit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 17))
	sources := []netip.Addr{netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::9")}
	for i := range 16 {
		sources = append(sources, netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}))
	}
	for n := range 2000 {
		old, new := randomRuleset(r), randomRuleset(r)
		mid := intersect(old, new)
		if err := validate(mid); err != nil {
			t.Fatalf("draw %d: %v", n, err)
		}
		for _, src := range sources {
			for port := uint16(19); port <= 28; port++ {
				for _, ifname := range []string{"eth0", "eth1", "eth2", "lo"} {
					pkt := rules.Packet{Protocol: rules.TCP, Source: src, Port: port, Interface: ifname}
					if mid.Decide(pkt).Verdict == rules.Accept || mid.Decide(pkt).Verdict == rules.Pass {
						o, w := old.Decide(pkt).Verdict, new.Decide(pkt).Verdict
						if (o != rules.Accept && o != rules.Pass) || (w != rules.Accept && w != rules.Pass) {
							t.Fatalf("draw %d: %+v: intersection %s, old %s, new %s\nold %+v\nnew %+v\nmid %+v", n, pkt, mid.Decide(pkt).Verdict, o, w, old, new, mid)
						}
					}
				}
			}
		}
	}
}

// Adding sources only: the intersection is the old rules (phase one
// writes nothing); revoking only: it is the new rules.
func TestIntersectOfPureAdditionOrRevocation(t *testing.T) {
	mk := func(ps ...string) *rules.Ruleset {
		var pfx []netip.Prefix
		for _, p := range ps {
			pfx = append(pfx, netip.MustParsePrefix(p))
		}
		rs := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Protocol: rules.TCP, Default: rules.Drop, Loopback: true,
			Ports: []rules.PortRange{{First: 27, Last: 27}}, Allow: rules.NewPrefixes(pfx...)}}}
		rs.Normalize()
		return rs
	}
	small, big := mk("198.18.0.1/32"), mk("198.18.0.1/32", "198.18.0.9/32", "2001:2::5/128")
	if got := intersect(small, big); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("adding sources: intersection %+v, want the old rules", got)
	}
	if got := intersect(big, small); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("revoking sources: intersection %+v, want the new rules", got)
	}
}
