package rules

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/portwarden/portwarden/policies"
)

// bigPolicy is one expose with 100,000 source prefixes that cannot merge:
// 60,000 IPv4 addresses, every second one of 198.18.0.0/15, and 40,000 IPv6
// addresses, every second one from 2001:2::, spread over 100 allow blocks,
// plus a deny block that repeats every 90th IPv4 address.
func bigPolicy() *policies.Policy {
	x := &policies.Expose{Name: "nscp", Protocol: "tcp", Ports: []policies.PortRange{{First: 27, Last: 27}}, Default: "drop", Loopback: true}
	const blocks = 100
	for range blocks {
		x.Allow = append(x.Allow, &policies.SourceRule{Kind: policies.KindAllow})
	}
	deny := &policies.SourceRule{Kind: policies.KindDeny}
	for i := range 60000 {
		n := uint32(i) * 2
		a := netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)})
		addr := policies.Address{Prefix: netip.PrefixFrom(a, 32)}
		x.Allow[i%blocks].From = append(x.Allow[i%blocks].From, addr)
		if i%90 == 0 {
			deny.From = append(deny.From, addr)
		}
	}
	for i := range 40000 {
		n := uint32(i) * 2
		b := [16]byte{0x20, 0x01, 0, 2, 13: byte(n >> 16), 14: byte(n >> 8), 15: byte(n)}
		x.Allow[i%blocks].From = append(x.Allow[i%blocks].From, policies.Address{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 128)})
	}
	x.Deny = []*policies.SourceRule{deny}
	return &policies.Policy{Exposes: []*policies.Expose{x}}
}

func BenchmarkCompile100k(b *testing.B) {
	p := bigPolicy()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecide100k(b *testing.B) {
	rs, err := Compile(bigPolicy())
	if err != nil {
		b.Fatal(err)
	}
	if n := rs.Exposures[0].Allow.Len(); n != 100000 {
		b.Fatalf("the allow set has %d prefixes, want 100000", n)
	}
	// Each case checks its verdict once, so a wrong address fails loudly
	// instead of benchmarking the wrong path.
	for _, bc := range []struct {
		name string
		src  string
		want string
	}{
		{"v4 allowed", "198.19.212.190", OriginAllow}, // the last of the 60,000
		{"v4 denied", "198.18.0.180", OriginDeny},     // the 90th
		{"v4 default", "198.18.0.1", OriginDefault},
		{"v6 allowed", "2001:2::1:387e", OriginAllow}, // the 40,000th: 2*39999 = 0x1387e
		{"v6 default", "2001:2::1:387f", OriginDefault},
	} {
		pkt := Packet{Protocol: TCP, Source: netip.MustParseAddr(bc.src), Port: 27}
		if d := rs.Decide(pkt); d.Origin == nil || d.Origin.Kind != bc.want {
			b.Fatalf("%s: Decide = %+v, want %s", bc.src, d, bc.want)
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rs.Decide(pkt)
			}
		})
	}
}

func BenchmarkCompareOneChange100k(b *testing.B) {
	p := bigPolicy()
	current, _ := Compile(p)
	p.Exposes[0].Allow[0].From = p.Exposes[0].Allow[0].From[1:]
	desired, _ := Compile(p)
	for b.Loop() {
		d := Compare(current, desired)
		if d.Empty() {
			b.Fatal("no change found")
		}
	}
}

func BenchmarkFingerprint100k(b *testing.B) {
	rs, _ := Compile(bigPolicy())
	for b.Loop() {
		rs.Fingerprint()
	}
}

// BenchmarkSourceChangesOneAdded100k: the plan's source view of one added
// address among 100,000 (what plan prints for a members_file change).
func BenchmarkSourceChangesOneAdded100k(b *testing.B) {
	p := bigPolicy()
	current, _ := Compile(p)
	p.Exposes[0].Allow[0].From = append(p.Exposes[0].Allow[0].From, policies.Address{Prefix: netip.MustParsePrefix("198.18.250.1/32")})
	desired, _ := Compile(p)
	for b.Loop() {
		changes, ok := SourceChanges(&current.Exposures[0], &desired.Exposures[0])
		if !ok || len(changes) != 1 {
			b.Fatalf("changes = %v", changes)
		}
	}
}

// BenchmarkDecideRange100k: explain --from 198.18.0.0/15 over 100,000
// listed sources, each its own sub-range.
func BenchmarkDecideRange100k(b *testing.B) {
	rs, _ := Compile(bigPolicy())
	from := netip.MustParsePrefix("198.18.0.0/15")
	for b.Loop() {
		if r := rs.DecideRange(Packet{Protocol: TCP, Port: 27}, from); len(r) < 60000 {
			b.Fatalf("%d ranges", len(r))
		}
	}
}

// BenchmarkShadows: the shadow check runs in every command that loads a
// policy. n exposes on one port, each with its own destination (none
// shadowed), and n on one port each behind an interface of its own.
func BenchmarkShadows(b *testing.B) {
	for _, n := range []int{100, 2000} {
		for _, shape := range []string{"destinations", "interfaces"} {
			rs := &Ruleset{}
			for i := range n {
				e := Exposure{Name: fmt.Sprintf("e%05d", i), Protocol: TCP, Ports: []PortRange{{First: 27, Last: 27}}}
				if shape == "destinations" {
					e.Destinations = Prefixes{V4: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)}}
				} else {
					e.Interfaces = []string{fmt.Sprintf("eth%d", i)}
				}
				rs.Exposures = append(rs.Exposures, e)
			}
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				for b.Loop() {
					if s := rs.Shadows(); len(s) != 0 {
						b.Fatalf("shadows: %v", s)
					}
				}
			})
		}
	}
}
