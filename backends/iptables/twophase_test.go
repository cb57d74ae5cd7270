package iptables

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go4.org/netipx"

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

// An allow set loses elements before the chains load and gains them
// after, each change in one kernel step: one element in place, more
// through a swapped temporary set; unchanged elements keep counters.
func TestSetTransitionShrinksBeforeGrowsAfter(t *testing.T) {
	mk := func(ps ...string) []setElem {
		var es []setElem
		for _, p := range ps {
			es = append(es, setElem{prefix: netip.MustParsePrefix(p)})
		}
		sortElems(es)
		return es
	}
	w := setSpec{name: "PW-0123456789-a4", fam: ipv4, role: roleAllow}
	have := func(es []setElem) map[string]*ownedSet {
		es[0].packets = 7
		return map[string]*ownedSet{w.name: {name: w.name, typ: setType, family: ipv4.ipsetFamily(), counters: true, maxElem: setMaxElem, refs: 1, elems: es}}
	}
	kinds := func(ops []setOp) string {
		var k []string
		for _, op := range ops {
			k = append(k, op.kind)
		}
		return strings.Join(k, ",")
	}
	for _, c := range []struct {
		name       string
		have, want []string
		pre, post  string
	}{
		{"unchanged", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32", "198.18.0.3/32"}, "", ""},
		{"one added", []string{"198.18.0.1/32"}, []string{"198.18.0.1/32", "198.18.0.3/32"}, "", "add"},
		{"one removed", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32"}, "del", ""},
		{"one replaced", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32", "198.18.0.5/32"}, "del", "add"},
		{"many added", []string{"198.18.0.1/32"}, []string{"198.18.0.1/32", "198.18.0.3/32", "198.18.0.5/32"}, "", "create,swap,destroy"},
		{"many removed", []string{"198.18.0.1/32", "198.18.0.3/32", "198.18.0.5/32"}, []string{"198.18.0.1/32"}, "create,swap,destroy", ""},
	} {
		w.elems = mk(c.want...)
		pre, post, err := setTransition(have(mk(c.have...)), []setSpec{w})
		if err != nil {
			t.Fatal(err)
		}
		if kinds(pre) != c.pre || kinds(post) != c.post {
			t.Errorf("%s: pre %q post %q, want %q %q", c.name, kinds(pre), kinds(post), c.pre, c.post)
		}
		for _, op := range append(pre, post...) {
			if op.kind == "create" && op.elems[0].packets != 7 {
				t.Errorf("%s: the swapped-in set lost the counters of %s", c.name, op.elems[0].prefix)
			}
		}
	}
}

// intersectPrefixes agrees with netipx, normalised, on lists that nest.
func TestIntersectPrefixesAgreesWithNetipx(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 27))
	random := func(n int) []netip.Prefix { return randomPrefixes(r, n) }
	for range 2000 {
		a, b := random(r.IntN(12)), random(r.IntN(12))
		var ib netipx.IPSetBuilder
		ib.AddSet(prefixSet(a))
		ib.Intersect(prefixSet(b))
		want, _ := ib.IPSet()
		if got := intersectPrefixes(a, b); !slices.Equal(got, want.Prefixes()) {
			t.Fatalf("%v ∩ %v = %v, want %v", a, b, got, want.Prefixes())
		}
	}
}
