package iptables

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// randomRuleset builds a policy over the lab's ports and client addresses.
func randomRuleset(r *rand.Rand, clients []netip.Addr) *rules.Ruleset {
	rs := &rules.Ruleset{}
	for i := range 1 + r.IntN(2) {
		e := rules.Exposure{Name: "e" + strconv.Itoa(i), Protocol: rules.TCP, Default: rules.Reject, Loopback: true, Log: r.IntN(2) == 0}
		for _, port := range []uint16{27, 28, 29} {
			if r.IntN(2) == 0 {
				e.Ports = append(e.Ports, rules.PortRange{First: port, Last: port})
			}
		}
		if len(e.Ports) == 0 {
			e.Ports = []rules.PortRange{{First: 27, Last: 27}}
		}
		e.Ports = mergePorts(e.Ports)
		switch r.IntN(4) {
		case 0:
			e.Interfaces = []string{"pw0"}
		case 1:
			e.Interfaces = []string{"pw9"}
		}
		if r.IntN(4) == 0 {
			e.Destinations = pfx(serverV4.String() + "/32")
		}
		var allow, deny []netip.Prefix
		for _, c := range clients {
			switch r.IntN(4) {
			case 0:
				allow = append(allow, netip.PrefixFrom(c, c.BitLen()))
			case 1:
				deny = append(deny, netip.PrefixFrom(c, c.BitLen()))
			case 2:
				allow = append(allow, netip.PrefixFrom(c, c.BitLen()-2).Masked())
			}
		}
		e.Allow, e.Deny = rules.NewPrefixes(allow...), rules.NewPrefixes(deny...)
		rs.Exposures = append(rs.Exposures, e)
	}
	rs.Normalize()
	return rs
}

// TestKernelDifferential applies random policies and checks that every
// probe through the kernel gets the verdict rules.Decide gives.
func TestKernelDifferential(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		clientsV4 := []netip.Addr{allowedV4, deniedV4, otherV4}
		for i := 5; i <= 9; i++ {
			a := netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})
			if err := l.client.AddAddr("pw1", netip.PrefixFrom(a, 24)); err != nil {
				t.Fatal(err)
			}
			clientsV4 = append(clientsV4, a)
		}
		clientsV6 := []netip.Addr{allowedV6, otherV6}
		l.listen(t, "tcp4", serverV4, 29)
		l.listen(t, "tcp6", serverV6, 29)
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 27))
		probes := 0
		for round := range 6 {
			rs := randomRuleset(r, append(slices.Clone(clientsV4), clientsV6...))
			l.apply(t, rs)
			check := func(src, dst netip.Addr, port uint16) {
				want := map[rules.Verdict]string{rules.Accept: open, rules.Pass: open, rules.Reject: rejected, rules.Drop: filtered}[rs.Decide(rules.Packet{
					Protocol: rules.TCP, Source: src, Destination: dst, Port: port, Interface: "pw0",
				}).Verdict]
				if got := l.probe(t, l.client, src, dst, int(port)); got != want {
					t.Errorf("round %d (seed %d): %s -> %s:%d = %s, model says %s; ruleset %+v", round, seed, src, dst, port, got, want, rs.Exposures)
				}
				probes++
			}
			for _, src := range clientsV4 {
				for _, port := range []uint16{27, 28, 29} {
					check(src, serverV4, port)
				}
			}
			for _, src := range clientsV6 {
				check(src, serverV6, uint16(27+r.IntN(3)))
			}
		}
		t.Logf("%d probes agree with the model", probes)
	})
}
