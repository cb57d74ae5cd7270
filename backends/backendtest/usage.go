package backendtest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// testUsage: after connections from one of two allowed sources and from a
// source with an expiring grant, the elements holding those counted
// packets and the other's did not; where the backend records last-seen,
// only the sources that connected are seen, and just now. A backend that does not implement backends.UsageReader has
// nothing to check (the iptables backend gains it separately).
func testUsage(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	ur, ok := l.Backend.(backends.UsageReader)
	if !ok {
		t.Logf("%s does not implement backends.UsageReader: nothing to check", l.Backend.Name())
		return
	}
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: ManagedPort, Last: ManagedPort}},
		Default: rules.Drop, Loopback: true,
		Allow:    rules.NewPrefixes(netip.PrefixFrom(AllowedV4, 32), netip.PrefixFrom(OtherV4, 32), netip.PrefixFrom(AllowedV6, 128)),
		Expiring: []rules.Grant{{Source: netip.PrefixFrom(OtherV6, 128), Until: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}},
	}}}
	rs.Normalize()
	l.Apply(t, rs)
	before := time.Now().Add(-2 * time.Second)
	for range 2 {
		if got := l.Probe(t, l.Client, AllowedV4, ServerV4, ManagedPort); got != Open {
			t.Fatalf("allowed %s: %s", AllowedV4, got)
		}
	}
	if got := l.Probe(t, l.Client, OtherV6, ServerV6, ManagedPort); got != Open {
		t.Fatalf("granted %s: %s", OtherV6, got)
	}
	u, err := ur.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	packets := map[netip.Addr]uint64{}
	for _, el := range u.Elements {
		for _, a := range []netip.Addr{AllowedV4, OtherV4, AllowedV6, OtherV6} {
			if el.Exposure == "nscp" && el.First.Compare(a) <= 0 && a.Compare(el.Last) <= 0 {
				packets[a] += el.Packets
			}
		}
	}
	if _, ok := packets[OtherV6]; !ok {
		// The iptables backend admits grants by time-match rules, not set
		// elements: it has no per-source record of them.
		t.Logf("%s reports no element for the expiring grant %s", l.Backend.Name(), OtherV6)
	} else if packets[OtherV6] < 2 {
		t.Errorf("the granted %s counted %d packets, want >= 2 (elements %+v)", OtherV6, packets[OtherV6], u.Elements)
	}
	// Two connections: at least two SYNs and two ACKs each way in.
	if packets[AllowedV4] < 4 || packets[OtherV4] != 0 || packets[AllowedV6] != 0 {
		t.Errorf("element packets %v: want >= 4 for %s and 0 for the others (elements %+v)", packets, AllowedV4, u.Elements)
	}
	if !u.LastSeenKnown {
		if u.LastSeenWhy == "" {
			t.Error("last-seen unknown without a reason")
		}
		return
	}
	if len(u.Seen) != 2 || u.Seen[0].Source != AllowedV4 || u.Seen[1].Source != OtherV6 || u.Seen[0].Exposure != "nscp" {
		t.Fatalf("seen %+v, want %s and %s", u.Seen, AllowedV4, OtherV6)
	}
	for _, s := range u.Seen {
		if s.LastSeen.Before(before) || s.LastSeen.After(time.Now().Add(2*time.Second)) {
			t.Errorf("%s last seen %s, want about now", s.Source, s.LastSeen)
		}
	}
	// Seen records are no drift: the plan stays empty.
	p, err := l.Backend.Plan(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Errorf("plan after traffic is not empty: drift %v", p.Current.Drift)
	}
}
