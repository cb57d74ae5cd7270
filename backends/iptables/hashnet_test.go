package iptables

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/portwarden/portwarden/rules"
)

// kernelSet is a hash:net set as the kernel keeps it: one element per
// prefix (an add without NLM_F_EXCL overwrites the flags), deleted by
// prefix, and an address decided by the most specific element holding it.
type kernelSet map[netip.Prefix]bool // prefix -> nomatch

func loadKernelSet(es []setElem) kernelSet {
	k := kernelSet{}
	for _, e := range es {
		k[e.prefix] = e.nomatch
	}
	return k
}

func (k kernelSet) elems() []setElem {
	var out []setElem
	for p, nm := range k {
		out = append(out, setElem{prefix: p, nomatch: nm})
	}
	sortElems(out)
	return out
}

func (k kernelSet) admits(a netip.Addr) bool {
	best, nomatch := -1, false
	for p, nm := range k {
		if p.Contains(a) && p.Bits() > best {
			best, nomatch = p.Bits(), nm
		}
	}
	return best >= 0 && !nomatch
}

// widePrefixes are n random prefixes, normalised: small ones in
// 198.18.0.0/26, and /0 and the two /1, which hash:net cannot hold as
// they are.
func widePrefixes(r *rand.Rand, n int) []netip.Prefix {
	var ps []netip.Prefix
	for range n {
		switch r.IntN(8) {
		case 0:
			ps = append(ps, netip.MustParsePrefix("0.0.0.0/0"))
		case 1:
			ps = append(ps, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}[r.IntN(2)])
		default:
			a := netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(64))})
			ps = append(ps, netip.PrefixFrom(a, 26+r.IntN(7)).Masked())
		}
	}
	return prefixSet(ps).Prefixes()
}

// The whole two-phase apply of an allow set, played op by op on a set
// that behaves as the kernel's: from old through the intersection to new,
// no state admits an address its step's policy refuses (old while the
// first phase runs, new in the second) or refuses one both policies
// admit, and the end is new; over random allow and deny lists that nest,
// split and cover whole halves of the address space. (A review's version
// of this test found a nomatch /1 written beside the equal /1 it should
// have cut out.)
func TestTwoPhaseSetsAsTheKernelHoldsThem(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var probes []netip.Addr
	for a := netip.MustParseAddr("198.18.0.0"); a.Less(netip.MustParseAddr("198.18.0.80")); a = a.Next() {
		probes = append(probes, a)
	}
	probes = append(probes, netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("200.1.1.1"))
	for n := range 10000 {
		mk := func() *rules.Ruleset {
			e := rules.Exposure{Name: "x", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 22, Last: 22}}, Default: rules.Drop}
			e.Allow = rules.NewPrefixes(widePrefixes(r, r.IntN(5))...)
			e.Deny = rules.NewPrefixes(widePrefixes(r, r.IntN(4))...)
			rs := &rules.Ruleset{Exposures: []rules.Exposure{e}}
			rs.Normalize()
			return rs
		}
		old, new := mk(), mk()
		admits := func(rs *rules.Ruleset, a netip.Addr) bool {
			return rs.Decide(rules.Packet{Protocol: rules.TCP, Source: a, Port: 22, Interface: "eth0"}).Verdict == rules.Accept
		}
		fail := func(format string, args ...any) {
			t.Fatalf("draw %d, old allow %v deny %v, new allow %v deny %v: %s", n,
				old.Exposures[0].Allow.V4, old.Exposures[0].Deny.V4, new.Exposures[0].Allow.V4, new.Exposures[0].Deny.V4, fmt.Sprintf(format, args...))
		}
		oldAllow, _ := exposureSets(&old.Exposures[0], ipv4)
		k := loadKernelSet(oldAllow.elems)
		if len(k) != len(oldAllow.elems) {
			fail("the old set has a prefix twice: %v", oldAllow.elems)
		}
		for _, a := range probes {
			if k.admits(a) != admits(old, a) {
				fail("the old set decides %s otherwise than the policy", a)
			}
		}
		for step, rs := range []*rules.Ruleset{intersect(old, new), new} {
			want, _ := exposureSets(&rs.Exposures[0], ipv4)
			have := &ownedSet{name: want.name, typ: setType, family: ipv4.ipsetFamily(), counters: true, maxElem: setMaxElem, refs: 1, elems: k.elems()}
			pre, post, err := setTransition(map[string]*ownedSet{want.name: have}, []setSpec{want})
			if err != nil {
				t.Fatal(err)
			}
			var temp kernelSet
			for _, op := range append(pre, post...) {
				switch op.kind {
				case "add":
					for _, e := range op.elems {
						k[e.prefix] = e.nomatch
					}
				case "del":
					for _, e := range op.elems {
						delete(k, e.prefix)
					}
				case "create":
					temp = loadKernelSet(op.elems)
					if len(temp) != len(op.elems) {
						fail("step %d writes a prefix twice: %v", step+1, op.elems)
					}
				case "swap":
					k, temp = temp, k
				case "destroy":
					temp = nil
				}
				bound := old
				if step == 1 {
					bound = new
				}
				for _, a := range probes {
					got := k.admits(a)
					if got && !admits(bound, a) {
						fail("step %d, after %s: admits %s beyond its step", step+1, op.kind, a)
					}
					if !got && admits(old, a) && admits(new, a) {
						fail("step %d, after %s: refuses %s, which both admit", step+1, op.kind, a)
					}
				}
			}
		}
		for _, a := range probes {
			if k.admits(a) != admits(new, a) {
				fail("the set ends deciding %s otherwise than the new policy", a)
			}
		}
	}
}
