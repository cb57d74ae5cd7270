package usage

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
)

// BenchmarkBuild maps 100,000 kernel elements and 10,000 seen sources onto
// a block of 100,000 entries (every other address of 2001:2::/48, so none
// merge).
func BenchmarkBuild(b *testing.B) {
	var ps []netip.Prefix
	u := &backends.Usage{LastSeenKnown: true}
	for i := range 100000 {
		k := uint32(2 * i)
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 12: byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
		ps = append(ps, netip.PrefixFrom(addr, 128))
		u.Elements = append(u.Elements, backends.ElementUse{Exposure: "nscp", First: addr, Last: addr, Packets: uint64(i % 3)})
		if i%10 == 0 {
			u.Seen = append(u.Seen, backends.SeenSource{Exposure: "nscp", Source: addr, LastSeen: now.Add(-time.Duration(i) * time.Second)})
		}
	}
	o := allowBlock(4, "", "2001:2::")
	o.Prefixes = ps
	have, desired := rulesets(o)
	for b.Loop() {
		r := Build(have, desired, u, Options{Now: now})
		if r.Entries != 100000 || r.Unused != 90000 {
			b.Fatalf("entries %d unused %d", r.Entries, r.Unused)
		}
	}
}
