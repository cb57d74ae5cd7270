package backendtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// Run runs every scenario against the backend the hooks open.
func Run(t *testing.T, h Hooks) {
	netnstest.RequireRoot(t)
	t.Run("Connectivity", func(t *testing.T) { testConnectivity(t, h) })
	t.Run("InterfacesAndDestinations", func(t *testing.T) { testInterfacesAndDestinations(t, h) })
	t.Run("SingleFamilyDestinations", func(t *testing.T) { testSingleFamilyDestinations(t, h) })
	t.Run("ReapplyWritesNothing", func(t *testing.T) { testReapplyWritesNothing(t, h) })
	t.Run("ForeignUntouched", func(t *testing.T) { testForeignUntouched(t, h) })
	t.Run("DamageRepaired", func(t *testing.T) { testDamageRepaired(t, h) })
	t.Run("StalePlanRefused", func(t *testing.T) { testStalePlan(t, h) })
	t.Run("RevocationCutsOpenConnection", func(t *testing.T) { testRevocation(t, h) })
	t.Run("Differential", func(t *testing.T) { testDifferential(t, h) })
	t.Run("AlternatingApplyIsAtomic", func(t *testing.T) { testAtomicity(t, h) })
	t.Run("ExpiringGrants", func(t *testing.T) { testExpiring(t, h) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, h) })
}

// testExpiring grants the unlisted peers access for a few seconds: the
// kernel must admit them, read the deadline back exactly, write nothing
// on re-apply (so the deadline is not pushed back), and refuse them after
// the deadline with nothing of portwarden running in between.
func testExpiring(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	ctx := context.Background()
	until := time.Now().UTC().Truncate(time.Second).Add(5 * time.Second) // 4-5 s from now
	rs := LabRuleset(rules.Drop)
	rs.Exposures[0].Expiring = []rules.Grant{{Source: netip.PrefixFrom(OtherV4, 32), Until: until}, {Source: netip.PrefixFrom(OtherV6, 128), Until: until}}
	rs.Normalize()
	l.Apply(t, rs)
	st, err := l.Backend.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := st.Ruleset.Exposure("nscp")
	if got == nil || len(got.Expiring) != 2 || len(st.Drift) > 0 {
		t.Fatalf("read back %+v, drift %q; want two grants", got, st.Drift)
	}
	for _, g := range got.Expiring {
		if d := g.Until.Sub(until); d < -time.Second || d > time.Second {
			t.Errorf("grant %s reads back until %s, want %s", g.Source, g.Until, until)
		}
	}
	writes := h.Writes(t)
	for i := range 2 {
		if p := l.Apply(t, rs); !p.Empty() {
			t.Fatalf("re-apply %d of unchanged grants planned %+v, drift %q", i+1, p.Diff, p.Current.Drift)
		}
	}
	if h.Writes(t) != writes {
		t.Fatal("re-applying unchanged grants wrote to the kernel (and may have moved the deadline)")
	}
	for _, src := range []netip.Addr{OtherV4, OtherV6} {
		if got := l.Probe(t, l.Client, src, serverFor(src), ManagedPort); got != Open {
			t.Errorf("granted %s before its deadline: %s, want open", src, got)
		}
	}
	if got := l.Probe(t, l.Client, AllowedV4, ServerV4, ManagedPort); got != Open {
		t.Errorf("allowed peer beside grants: %s", got)
	}
	// Nothing runs now but the kernel.
	time.Sleep(time.Until(until.Add(2 * time.Second)))
	for _, src := range []netip.Addr{OtherV4, OtherV6} {
		if got := l.Probe(t, l.Client, src, serverFor(src), ManagedPort); got != Filtered {
			t.Errorf("granted %s 2 s after its deadline: %s, want filtered", src, got)
		}
	}
	if got := l.Probe(t, l.Client, AllowedV4, ServerV4, ManagedPort); got != Open {
		t.Errorf("allowed peer after the grants expired: %s", got)
	}
	// What the policy compiles to now, the deadline past: no grants. The
	// backend may still hold an inert expired rule, which apply removes.
	after := LabRuleset(rules.Drop)
	l.Apply(t, after)
	st, err = l.Backend.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := rules.Compare(st.Ruleset, after); !d.Empty() || len(st.Drift) > 0 {
		t.Fatalf("after expiry: diff %+v drift %q", d, st.Drift)
	}
}

// testConnectivity probes every way of refusing: drop, and reject with
// each answer, which the backend must also read back as written.
func testConnectivity(t *testing.T, h Hooks) {
	for _, c := range []struct {
		name    string
		def     rules.Verdict
		answer  rules.RejectWith
		refused string
	}{
		{"reject", rules.Reject, "", Closed}, // the default: a TCP reset
		{"reject-tcp-reset", rules.Reject, rules.TCPReset, Closed},
		{"reject-icmp-port-unreachable", rules.Reject, rules.ICMPPortUnreachable, Closed},
		{"reject-icmp-admin-prohibited", rules.Reject, rules.ICMPAdminProhibited, Rejected},
		{"drop", rules.Drop, "", Filtered},
	} {
		def, refused := c.def, c.refused
		t.Run(c.name, func(t *testing.T) {
			l := NewLab(t, h)
			rs := LabRuleset(def)
			if c.answer != "" {
				rs.Exposures[0].RejectWith = c.answer
				rs.Normalize()
			}
			l.Apply(t, rs)
			st, err := l.Backend.Current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Ruleset.Exposure("nscp"); got == nil || got.RejectWith != rs.Exposures[0].RejectWith || len(st.Drift) > 0 {
				t.Fatalf("read back %+v (drift %q), want reject_with %q", got, st.Drift, rs.Exposures[0].RejectWith)
			}
			if p, err := l.Backend.Plan(context.Background(), rs); err != nil || !p.Empty() {
				t.Fatalf("plan after apply is not empty: %+v %v", p, err)
			}
			for _, c := range []struct {
				src  netip.Addr
				port int
				want string
			}{
				{AllowedV4, ManagedPort, Open},
				{AllowedV6, ManagedPort, Open},
				{DeniedV4, ManagedPort, refused},
				{DeniedV6, ManagedPort, refused},
				{OtherV4, ManagedPort, refused},
				{OtherV6, ManagedPort, refused},
				{DeniedV4, UnmanagedPort, Open},
				{OtherV6, UnmanagedPort, Open},
			} {
				if got := l.Probe(t, l.Client, c.src, serverFor(c.src), c.port); got != c.want {
					t.Errorf("%s -> port %d = %s, want %s", c.src, c.port, got, c.want)
				}
				if want := Expected(rs, c.src, serverFor(c.src), c.port); want != c.want {
					t.Errorf("the model disagrees with the scenario for %s: %s", c.src, want)
				}
			}
			// Loopback: the server reaches its own managed port.
			for _, dst := range []netip.Addr{ServerV4, ServerV6} {
				if got := l.Probe(t, l.Server, netip.Addr{}, dst, ManagedPort); got != Open {
					t.Errorf("loopback to %s = %s, want open", dst, got)
				}
			}
			counters, err := l.Backend.Counters(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var allowed, refusedPackets, logged uint64
			for _, c := range counters {
				switch {
				case strings.Contains(c.Rule, "log"):
					logged += c.Packets
				case strings.HasPrefix(c.Rule, "allow"):
					allowed += c.Packets
				case strings.HasPrefix(c.Rule, "deny"), strings.HasPrefix(c.Rule, "default"):
					refusedPackets += c.Packets
				}
			}
			if allowed == 0 || refusedPackets == 0 || logged == 0 {
				t.Errorf("counters did not count: allowed %d refused %d logged %d in %+v", allowed, refusedPackets, logged, counters)
			}
		})
	}
}

func testInterfacesAndDestinations(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	extra := netip.MustParseAddr("198.18.0.9")
	if err := l.Server.AddAddr("pw0", netip.PrefixFrom(extra, 24)); err != nil {
		t.Fatal(err)
	}
	l.Listen(t, "tcp4", extra, ManagedPort)
	rs := LabRuleset(rules.Reject)
	rs.Exposures[0].Destinations = rules.NewPrefixes(netip.PrefixFrom(ServerV4, 32))
	l.Apply(t, rs)
	for _, c := range []struct {
		src, dst netip.Addr
		want     string
	}{{OtherV4, ServerV4, Closed}, {OtherV4, extra, Open}, {OtherV6, ServerV6, Open}} {
		if got := l.Probe(t, l.Client, c.src, c.dst, ManagedPort); got != c.want {
			t.Errorf("destinations: %s -> %s = %s, want %s", c.src, c.dst, got, c.want)
		}
	}
	rs.Exposures[0].Destinations = rules.Prefixes{}
	rs.Exposures[0].Interfaces = []string{"pw9"}
	l.Apply(t, rs)
	if got := l.Probe(t, l.Client, OtherV4, ServerV4, ManagedPort); got != Open {
		t.Errorf("other interface: %s, want open (not managed)", got)
	}
	rs.Exposures[0].Interfaces = []string{"pw0"}
	l.Apply(t, rs)
	if got := l.Probe(t, l.Client, OtherV4, ServerV4, ManagedPort); got != Closed {
		t.Errorf("managed interface: %s, want closed (a TCP reset)", got)
	}
}

// testSingleFamilyDestinations applies exposures whose destinations are
// all IPv4 or all IPv6, with and without interfaces: the other family's
// packets never match them, yet the backend must read back exactly what
// it wrote, sources and grants of both families included, with no drift,
// so that a re-plan is empty, a re-apply writes nothing and a backend
// opened afresh (a later `portwarden check`) agrees.
func testSingleFamilyDestinations(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	ctx := context.Background()
	const otherPort = 29
	l.Listen(t, "tcp4", ServerV4, otherPort)
	l.Listen(t, "tcp6", ServerV6, otherPort)
	until := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	grants := []rules.Grant{{Source: netip.PrefixFrom(OtherV4, 32), Until: until}, {Source: netip.PrefixFrom(OtherV6, 128), Until: until}}
	single := func(name string, port uint16, dst netip.Addr, ifaces ...string) rules.Exposure {
		e := LabRuleset(rules.Reject).Exposures[0]
		e.Name, e.Ports, e.Interfaces = name, []rules.PortRange{{First: port, Last: port}}, ifaces
		e.Destinations = rules.NewPrefixes(netip.PrefixFrom(dst, dst.BitLen()))
		return e
	}
	for _, c := range []struct {
		name      string
		exposures []rules.Exposure
	}{
		{"ipv4-only", []rules.Exposure{single("nscp", ManagedPort, ServerV4)}},
		{"ipv6-only", []rules.Exposure{single("nscp", ManagedPort, ServerV6)}},
		{"ipv4-only-interface", []rules.Exposure{single("nscp", ManagedPort, ServerV4, "pw0")}},
		{"ipv6-only-interface", []rules.Exposure{single("nscp", ManagedPort, ServerV6, "pw0", "pw9")}},
		{"ipv4-only-and-ipv6-only", []rules.Exposure{single("web4", ManagedPort, ServerV4), single("web6", otherPort, ServerV6, "pw0")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := &rules.Ruleset{Exposures: c.exposures}
			// Grants of both families, so the family no packet reaches
			// still carries something of the model.
			rs.Exposures[0].Expiring = grants
			rs.Normalize()
			l.Apply(t, rs)
			for i, b := range []backends.Backend{l.Backend, h.Open(t, l.Server.Path())} {
				st, err := b.Current(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
					t.Fatalf("backend %d reads back: diff %+v drift %q", i+1, d, st.Drift)
				}
				p, err := b.Plan(ctx, rs)
				if err != nil {
					t.Fatal(err)
				}
				if !p.Empty() {
					t.Fatalf("backend %d: plan after apply is not empty: %+v drift %q", i+1, p.Diff, p.Current.Drift)
				}
			}
			writes := h.Writes(t)
			if p := l.Apply(t, rs); !p.Empty() {
				t.Fatalf("re-apply planned %+v drift %q", p.Diff, p.Current.Drift)
			}
			if h.Writes(t) != writes {
				t.Fatal("re-applying an unchanged policy wrote to the kernel")
			}
			// The denied peer of the family with destinations is refused,
			// the other family's passes by.
			outcomes := map[string]bool{}
			for _, src := range []netip.Addr{AllowedV4, DeniedV4, AllowedV6, DeniedV6} {
				for _, port := range []int{ManagedPort, otherPort} {
					want := Expected(rs, src, serverFor(src), port)
					outcomes[want] = true
					if got := l.Probe(t, l.Client, src, serverFor(src), port); got != want {
						t.Errorf("%s -> port %d = %s, the model says %s", src, port, got, want)
					}
				}
			}
			if !outcomes[Open] || !outcomes[Closed] {
				t.Fatalf("the scenario probes no refused or no admitted packet: %v", outcomes)
			}
		})
	}
}

func testReapplyWritesNothing(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	rs := LabRuleset(rules.Drop)
	before := h.Writes(t)
	l.Apply(t, rs)
	if h.Writes(t) == before {
		t.Fatal("the first apply wrote nothing")
	}
	for i := 0; i < 3; i++ {
		writes := h.Writes(t)
		p := l.Apply(t, rs)
		if !p.Empty() {
			t.Fatalf("re-plan of an unchanged policy is not empty: %+v drift %q", p.Diff, p.Current.Drift)
		}
		if h.Writes(t) != writes {
			t.Fatalf("re-apply %d of an unchanged policy wrote to the kernel", i+1)
		}
	}
	// A one-source change is a change, and then nothing again.
	rs2 := LabRuleset(rules.Drop)
	rs2.Exposures[0].Allow = rules.NewPrefixes(append(rs2.Exposures[0].Allow.All(), netip.MustParsePrefix("198.18.0.77/32"))...)
	if p := l.Apply(t, rs2); p.Empty() {
		t.Fatal("adding a source planned nothing")
	}
	if got := l.Probe(t, l.Client, AllowedV4, ServerV4, ManagedPort); got != Open {
		t.Errorf("after adding a source the allowed peer gets %s", got)
	}
}

func testForeignUntouched(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	path := l.Server.Path()
	h.InstallForeign(t, path)
	before := h.Foreign(t, path)
	l.Apply(t, LabRuleset(rules.Reject))
	if got := h.Foreign(t, path); got != before {
		t.Errorf("apply changed foreign objects:\nbefore\n%s\nafter\n%s", before, got)
	}
	if got := l.Probe(t, l.Client, DeniedV4, ServerV4, ManagedPort); got != Closed {
		t.Errorf("denied peer with foreign rules present: %s, want closed (a TCP reset)", got)
	}
	rs := LabRuleset(rules.Drop)
	rs.Exposures[0].Log = false
	l.Apply(t, rs)
	if got := h.Foreign(t, path); got != before {
		t.Errorf("a second apply changed foreign objects")
	}
	ctx := context.Background()
	if err := l.Backend.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	writes := h.Writes(t)
	if err := l.Backend.Destroy(ctx); err != nil {
		t.Fatalf("destroy with nothing installed: %v", err)
	}
	if h.Writes(t) != writes {
		t.Error("destroy with nothing installed wrote")
	}
	if got := h.Foreign(t, path); got != before {
		t.Errorf("destroy changed foreign objects:\nbefore\n%s\nafter\n%s", before, got)
	}
	st, err := l.Backend.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Installed || len(st.Ruleset.Exposures) > 0 {
		t.Errorf("after destroy something is still installed: %+v", st)
	}
}

func testDamageRepaired(t *testing.T, h Hooks) {
	for _, kind := range h.DamageKinds() {
		t.Run(kind, func(t *testing.T) {
			l := NewLab(t, h)
			rs := LabRuleset(rules.Reject)
			l.Apply(t, rs)
			h.Damage(t, l.Server.Path(), kind, "nscp")
			ctx := context.Background()
			p, err := l.Backend.Plan(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			if p.Empty() {
				t.Fatalf("damage %q not seen by plan", kind)
			}
			if err := l.Backend.Apply(ctx, p); err != nil {
				t.Fatal(err)
			}
			st, err := l.Backend.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
				t.Fatalf("not repaired in one apply: diff %+v drift %q", d, st.Drift)
			}
			for _, src := range []netip.Addr{AllowedV4, OtherV4, AllowedV6, OtherV6} {
				if got, want := l.Probe(t, l.Client, src, serverFor(src), ManagedPort), Expected(rs, src, serverFor(src), ManagedPort); got != want {
					t.Errorf("after repair %s gets %s, want %s", src, got, want)
				}
			}
		})
	}
}

func testStalePlan(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	l.Apply(t, LabRuleset(rules.Drop))
	ctx := context.Background()
	p, err := l.Backend.Plan(ctx, LabRuleset(rules.Reject))
	if err != nil {
		t.Fatal(err)
	}
	h.Damage(t, l.Server.Path(), h.DamageKinds()[0], "nscp")
	writes := h.Writes(t)
	err = l.Backend.Apply(ctx, p)
	if !errors.Is(err, backends.ErrStalePlan) {
		t.Fatalf("apply of a stale plan: %v, want ErrStalePlan", err)
	}
	if h.Writes(t) != writes {
		t.Fatal("a stale plan wrote")
	}
}

func testRevocation(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	l.Apply(t, LabRuleset(rules.Reject))
	var conn net.Conn
	err := l.Client.Do(func() error {
		d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: AllowedV4.AsSlice()}}
		var err error
		conn, err = d.Dial("tcp", netip.AddrPortFrom(ServerV4, ManagedPort).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func() error {
		conn.SetDeadline(time.Now().Add(probeTimeout))
		if _, err := conn.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := conn.Read(buf)
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("the open connection does not work before revocation: %v", err)
	}
	rs := LabRuleset(rules.Reject)
	rs.Exposures[0].Allow = rules.NewPrefixes(netip.MustParsePrefix("2001:2::2/127"))
	l.Apply(t, rs)
	if err := echo(); err == nil {
		t.Fatal("the revoked peer's open connection still works")
	}
}

// randomRuleset builds a policy over the lab's ports and client addresses.
func randomRuleset(r *rand.Rand, clients []netip.Addr) *rules.Ruleset {
	rs := &rules.Ruleset{}
	for i := range 1 + r.IntN(2) {
		e := rules.Exposure{Name: "e" + strconv.Itoa(i), Protocol: rules.TCP, Default: []rules.Verdict{rules.Reject, rules.Drop}[r.IntN(2)], Loopback: true, Log: r.IntN(2) == 0,
			RejectWith: append([]rules.RejectWith{""}, rules.RejectChoices...)[r.IntN(4)]}
		for _, port := range []uint16{27, 28, 29} {
			if r.IntN(2) == 0 {
				e.Ports = append(e.Ports, rules.PortRange{First: port, Last: port})
			}
		}
		if len(e.Ports) == 0 {
			e.Ports = []rules.PortRange{{First: 27, Last: 27}}
		}
		switch r.IntN(4) {
		case 0:
			e.Interfaces = []string{"pw0"}
		case 1:
			e.Interfaces = []string{"pw9"}
		}
		if r.IntN(4) == 0 {
			e.Destinations = rules.NewPrefixes(netip.PrefixFrom(ServerV4, 32))
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

// testDifferential applies random policies and checks that every probe
// through the kernel gets the verdict rules.Decide gives.
func testDifferential(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	clientsV4 := []netip.Addr{AllowedV4, DeniedV4, OtherV4}
	for i := 5; i <= 9; i++ {
		a := netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})
		if err := l.Client.AddAddr("pw1", netip.PrefixFrom(a, 24)); err != nil {
			t.Fatal(err)
		}
		clientsV4 = append(clientsV4, a)
	}
	clientsV6 := []netip.Addr{AllowedV6, OtherV6}
	l.Listen(t, "tcp4", ServerV4, 29)
	l.Listen(t, "tcp6", ServerV6, 29)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 27))
	probes := 0
	for round := range 6 {
		rs := randomRuleset(r, append(slices.Clone(clientsV4), clientsV6...))
		l.Apply(t, rs)
		check := func(src netip.Addr, port int) {
			want := Expected(rs, src, serverFor(src), port)
			if got := l.Probe(t, l.Client, src, serverFor(src), port); got != want {
				t.Errorf("round %d (seed %d): %s -> port %d = %s, the model says %s; ruleset %+v", round, seed, src, port, got, want, rs.Exposures)
			}
			probes++
		}
		for _, src := range clientsV4 {
			for _, port := range []int{27, 28, 29} {
				check(src, port)
			}
		}
		for _, src := range clientsV6 {
			check(src, 27+r.IntN(3))
		}
	}
	t.Logf("%d probes agree with the model", probes)
}

// testAtomicity: while applies alternate between two policies, an
// always-allowed peer is never refused and an always-denied one never
// gets through.
func testAtomicity(t *testing.T, h Hooks) {
	l := NewLab(t, h)
	a := LabRuleset(rules.Reject)
	b := LabRuleset(rules.Reject)
	// b changes sets and the chain's shape, so every apply rewrites.
	b.Exposures[0].Allow = rules.NewPrefixes(netip.MustParsePrefix("198.18.0.2/31"), netip.MustParsePrefix("198.18.0.16/28"), netip.MustParsePrefix("2001:2::2/127"))
	b.Exposures[0].Log = false
	l.Apply(t, a)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 100; i++ {
			rs := a
			if i%2 == 0 {
				rs = b
			}
			p, err := l.Backend.Plan(context.Background(), rs)
			if err == nil {
				err = l.Backend.Apply(context.Background(), p)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.After(2 * time.Minute)
	probes := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if probes == 0 {
				t.Fatal("no probes ran during the applies")
			}
			t.Logf("%d probe pairs during 100 applies", probes)
			return
		case <-deadline:
			t.Fatal("applies did not finish within 2 minutes")
		default:
		}
		if got := l.Probe(t, l.Client, AllowedV4, ServerV4, ManagedPort); got != Open {
			t.Fatalf("allowed peer got %s during an apply", got)
		}
		if got := l.Probe(t, l.Client, DeniedV4, ServerV4, ManagedPort); got == Open {
			t.Fatal("denied peer got through during an apply")
		}
		probes++
	}
}
