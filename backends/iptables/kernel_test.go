package iptables

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

func TestKernelConnectivity(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		for _, def := range []rules.Verdict{rules.Reject, rules.Drop} {
			t.Run(string(def), func(t *testing.T) {
				l := newLab(t, v)
				l.apply(t, labRuleset(def))
				refused := filtered
				if def == rules.Reject {
					refused = rejected
				}
				for _, c := range []struct {
					src, dst netip.Addr
					port     int
					want     string
				}{
					{allowedV4, serverV4, managedPort, open},
					{allowedV6, serverV6, managedPort, open},
					{deniedV4, serverV4, managedPort, refused},
					{deniedV6, serverV6, managedPort, refused},
					{otherV4, serverV4, managedPort, refused},
					{otherV6, serverV6, managedPort, refused},
					{deniedV4, serverV4, unmanagedPort, open},
					{otherV6, serverV6, unmanagedPort, open},
				} {
					if got := l.probe(t, l.client, c.src, c.dst, c.port); got != c.want {
						t.Errorf("%s -> %s:%d = %s, want %s", c.src, c.dst, c.port, got, c.want)
					}
				}
				// Loopback: the server reaches its own managed port.
				if got := l.probe(t, l.server, netip.Addr{}, serverV4, managedPort); got != open {
					t.Errorf("loopback v4 = %s, want open", got)
				}
				if got := l.probe(t, l.server, netip.Addr{}, serverV6, managedPort); got != open {
					t.Errorf("loopback v6 = %s, want open", got)
				}
				counters, err := l.b.Counters(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var allowed, refusedPk, logged uint64
				for _, c := range counters {
					if strings.HasPrefix(c.Rule, "log ") || strings.HasPrefix(c.Rule, "deny-log ") {
						logged += c.Packets
					}
					if strings.HasPrefix(c.Rule, "allow ") {
						allowed += c.Packets
					}
					if strings.HasPrefix(c.Rule, "deny ") || strings.HasPrefix(c.Rule, "default ") {
						refusedPk += c.Packets
					}
				}
				if allowed == 0 || refusedPk == 0 || logged == 0 {
					t.Errorf("counters did not count: allowed %d refused %d logged %d in %+v", allowed, refusedPk, logged, counters)
				}
				for _, c := range counters {
					if c.Exposure != "nscp" && !strings.HasPrefix(c.Rule, "jump ") {
						t.Errorf("counter not tied to the exposure: %+v", c)
					}
				}
			})
		}
	})
}

func TestKernelInterfacesAndDestinations(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		extra := netip.MustParseAddr("198.18.0.9")
		if err := l.server.AddAddr("pw0", netip.PrefixFrom(extra, 24)); err != nil {
			t.Fatal(err)
		}
		l.listen(t, "tcp4", extra, managedPort)
		rs := labRuleset(rules.Reject)
		rs.Exposures[0].Destinations = pfx(serverV4.String() + "/32")
		l.apply(t, rs)
		if got := l.probe(t, l.client, otherV4, serverV4, managedPort); got != rejected {
			t.Errorf("managed destination: %s, want rejected", got)
		}
		if got := l.probe(t, l.client, otherV4, extra, managedPort); got != open {
			t.Errorf("other destination: %s, want open (not managed)", got)
		}
		if got := l.probe(t, l.client, otherV6, serverV6, managedPort); got != open {
			t.Errorf("v6 with v4-only destinations: %s, want open (not managed)", got)
		}
		rs.Exposures[0].Destinations = rules.Prefixes{}
		rs.Exposures[0].Interfaces = []string{"pw9"}
		l.apply(t, rs)
		if got := l.probe(t, l.client, otherV4, serverV4, managedPort); got != open {
			t.Errorf("other interface: %s, want open (not managed)", got)
		}
		rs.Exposures[0].Interfaces = []string{"pw0"}
		l.apply(t, rs)
		if got := l.probe(t, l.client, otherV4, serverV4, managedPort); got != rejected {
			t.Errorf("managed interface: %s, want rejected", got)
		}
	})
}

func TestKernelReapplyWritesNothing(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		l.apply(t, labRuleset(rules.Drop))
		if n := l.writes.count(); n != 2 {
			t.Fatalf("first apply wrote %d times, want 2 (one per family)", n)
		}
		before := l.save(t, ipv4) + l.save(t, ipv6)
		p := l.apply(t, labRuleset(rules.Drop))
		if !p.Empty() {
			t.Fatalf("re-plan not empty: %+v drift %q", p.Diff, p.Current.Drift)
		}
		if n := l.writes.count(); n != 2 {
			t.Fatalf("unchanged re-apply wrote (%d writes in total)", n)
		}
		if after := l.save(t, ipv4) + l.save(t, ipv6); after != before {
			t.Fatalf("ruleset changed by an unchanged re-apply:\n%s\n---\n%s", before, after)
		}
		// A one-source change writes one family, and edits the chain in
		// place: the other rules keep their counters.
		if got := l.probe(t, l.client, allowedV4, serverV4, managedPort); got != open {
			t.Fatalf("allowed peer: %s", got)
		}
		allowCount := func() uint64 {
			cs, err := l.b.Counters(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if c.Rule == "allow v4 198.18.0.2/31" {
					return c.Packets
				}
			}
			t.Fatalf("no counter for the allow rule in %+v", cs)
			return 0
		}
		counted := allowCount()
		if counted == 0 {
			t.Fatal("allow counter did not count")
		}
		rs := labRuleset(rules.Drop)
		rs.Exposures[0].Allow = pfx("198.18.0.2/31", "198.18.0.8/32", "2001:2::2/127")
		l.apply(t, rs)
		if n := l.writes.count(); n != 3 {
			t.Fatalf("one v4 source change: %d writes in total, want 3", n)
		}
		if after := allowCount(); after < counted {
			t.Fatalf("the unchanged allow rule lost its counters (%d -> %d): the chain was rewritten", counted, after)
		}
		st, err := l.b.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
			t.Fatalf("after change: diff %+v drift %q", d, st.Drift)
		}
	})
}

// foreignSetup installs chains shaped like Docker's and firewalld's.
var foreignSetup = [][]string{
	{"-N", "DOCKER"}, {"-N", "DOCKER-USER"}, {"-N", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "DOCKER-USER", "-j", "RETURN"},
	{"-A", "FORWARD", "-j", "DOCKER-USER"},
	{"-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-i", "docker0", "!", "-o", "docker0", "-j", "RETURN"},
	{"-N", "INPUT_direct"}, {"-N", "IN_public"}, {"-N", "IN_public_allow"},
	// Names close to portwarden's own must not be taken for them.
	{"-N", "PW-LOOKALIKE"}, {"-N", "PORTWARDEN2"}, {"-A", "PW-LOOKALIKE", "-j", "RETURN"},
	{"-A", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
	{"-A", "INPUT", "-j", "INPUT_direct"},
	{"-A", "INPUT", "-j", "IN_public"},
	{"-A", "IN_public", "-j", "IN_public_allow"},
	{"-A", "IN_public_allow", "-p", "tcp", "--dport", "22", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
	{"-A", "IN_public_allow", "-p", "tcp", "--dport", "28", "-j", "ACCEPT"},
}

// withoutOwned drops portwarden's lines from iptables-save output.
func withoutOwned(save string) string {
	var keep []string
	for _, line := range strings.Split(save, "\n") {
		if strings.Contains(line, "portwarden") || strings.HasPrefix(line, ":PORTWARDEN ") ||
			(strings.HasPrefix(line, ":PW-") && isOwnedChain(strings.Fields(line[1:])[0])) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func TestKernelForeignRulesUntouched(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		for _, fam := range families {
			for _, args := range foreignSetup {
				l.ipt(t, fam, args...)
			}
		}
		before := [2]string{l.save(t, ipv4), l.save(t, ipv6)}
		l.apply(t, labRuleset(rules.Reject))
		for _, fam := range families {
			after := l.save(t, fam)
			if withoutOwned(after) != before[fam] {
				t.Errorf("%s foreign rules changed by apply:\nbefore\n%s\nafter\n%s", fam, before[fam], after)
			}
			if !strings.Contains(strings.SplitN(after, "-A INPUT", 2)[1], "portwarden jump") {
				t.Errorf("%s: the jump is not the first INPUT rule:\n%s", fam, after)
			}
		}
		// The foreign INPUT rules above would accept established traffic;
		// portwarden's jump is first, so a denied peer is still refused.
		if got := l.probe(t, l.client, deniedV4, serverV4, managedPort); got != rejected {
			t.Errorf("denied peer with foreign rules: %s", got)
		}
		if err := l.b.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		writes := l.writes.count()
		if err := l.b.Destroy(context.Background()); err != nil {
			t.Fatalf("destroy with nothing installed: %v", err)
		}
		if l.writes.count() != writes {
			t.Error("destroy with nothing installed wrote")
		}
		for _, fam := range families {
			if after := l.save(t, fam); after != before[fam] {
				t.Errorf("%s ruleset after destroy differs:\nbefore\n%s\nafter\n%s", fam, before[fam], after)
			}
		}
		st, err := l.b.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Installed || len(st.Ruleset.Exposures) > 0 {
			t.Errorf("after destroy: %+v", st)
		}
	})
}

func TestKernelDriftIsRepaired(t *testing.T) {
	chain := exposureChain("nscp")
	type damage struct {
		fam  family
		cmds [][]string
	}
	damages := map[string]damage{
		"rule deleted":   {ipv4, [][]string{{"-D", chain, "1"}}},
		"chain flushed":  {ipv4, [][]string{{"-F", chain}}},
		"hand-added":     {ipv4, [][]string{{"-I", chain, "1", "-s", "198.18.0.4", "-j", "ACCEPT"}}},
		"jump deleted":   {ipv4, [][]string{{"-D", "INPUT", "1"}}},
		"jump not first": {ipv4, [][]string{{"-I", "INPUT", "1", "-s", "198.18.0.4", "-j", "ACCEPT"}}},
		"top flushed":    {ipv4, [][]string{{"-F", topChain}}},
		"family removed": {ipv6, [][]string{{"-D", "INPUT", "1"}, {"-F", topChain}, {"-F", chain}, {"-X", topChain}, {"-X", chain}}},
	}
	forEachVariant(t, func(t *testing.T, v Variant) {
		for name, dmg := range damages {
			t.Run(name, func(t *testing.T) {
				l := newLab(t, v)
				rs := labRuleset(rules.Reject)
				l.apply(t, rs)
				clean := l.save(t, dmg.fam)
				for _, c := range dmg.cmds {
					l.ipt(t, dmg.fam, c...)
				}
				p, err := l.b.Plan(context.Background(), rs)
				if err != nil {
					t.Fatal(err)
				}
				if p.Empty() {
					t.Fatalf("damage %q not seen by plan", name)
				}
				if err := l.b.Apply(context.Background(), p); err != nil {
					t.Fatal(err)
				}
				st, err := l.b.Current(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
					t.Fatalf("not repaired: diff %+v drift %q", d, st.Drift)
				}
				if name != "jump not first" {
					if got := l.save(t, dmg.fam); got != clean {
						t.Errorf("repaired ruleset differs:\n%s\n---\n%s", clean, got)
					}
				}
				src, dst := otherV4, serverV4
				if dmg.fam == ipv6 {
					src, dst = otherV6, serverV6
				}
				if got := l.probe(t, l.client, src, dst, managedPort); got != rejected {
					t.Errorf("after repair other peer: %s", got)
				}
			})
		}
	})
}

func TestKernelStalePlanIsRefused(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		l.apply(t, labRuleset(rules.Drop))
		p, err := l.b.Plan(context.Background(), labRuleset(rules.Reject))
		if err != nil {
			t.Fatal(err)
		}
		l.ipt(t, ipv6, "-D", exposureChain("nscp"), "1")
		writes := l.writes.count()
		err = l.b.Apply(context.Background(), p)
		if !errors.Is(err, backends.ErrStalePlan) {
			t.Fatalf("apply of a stale plan: %v, want ErrStalePlan", err)
		}
		if l.writes.count() != writes {
			t.Fatalf("a stale plan wrote")
		}
	})
}

func TestKernelRevocationCutsOpenConnection(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		l.apply(t, labRuleset(rules.Reject))
		var conn net.Conn
		err := l.client.Do(func() error {
			d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: allowedV4.AsSlice()}}
			var err error
			conn, err = d.Dial("tcp", netip.AddrPortFrom(serverV4, managedPort).String())
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
			t.Fatalf("open connection does not work before revocation: %v", err)
		}
		rs := labRuleset(rules.Reject)
		rs.Exposures[0].Allow = pfx("198.18.0.3/32", "2001:2::2/127")
		l.apply(t, rs)
		if err := echo(); err == nil {
			t.Fatalf("the revoked peer's open connection still works")
		}
	})
}

func TestKernelAlternatingApplyIsAtomic(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		a := labRuleset(rules.Reject)
		b := labRuleset(rules.Reject)
		// b moves the deny list and adds sources, so each apply rewrites
		// the chain; allowed stays allowed and denied stays denied.
		b.Exposures[0].Allow = pfx("198.18.0.2/31", "198.18.0.16/28", "2001:2::2/127")
		b.Exposures[0].Log = false
		l.apply(t, a)
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 100; i++ {
				rs := a
				if i%2 == 0 {
					rs = b
				}
				p, err := l.b.Plan(context.Background(), rs)
				if err == nil {
					err = l.b.Apply(context.Background(), p)
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
			if got := l.probe(t, l.client, allowedV4, serverV4, managedPort); got != open {
				t.Fatalf("allowed peer got %s during an apply", got)
			}
			if got := l.probe(t, l.client, deniedV4, serverV4, managedPort); got == open {
				t.Fatalf("denied peer got through during an apply")
			}
			probes++
		}
	})
}

func TestKernelNFTGenerationMovesWithWrites(t *testing.T) {
	netnstest.RequireRoot(t)
	if checkBinaries(NFT) != nil {
		t.Fatal("iptables-nft is not installed (the iptables package provides it)")
	}
	l := newLab(t, NFT)
	g1, err := nftGeneration(l.server.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.b.Current(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g2, _ := nftGeneration(l.server.Path()); g2 != g1 {
		t.Fatalf("reading moved the generation %d -> %d", g1, g2)
	}
	l.apply(t, labRuleset(rules.Drop))
	if g3, _ := nftGeneration(l.server.Path()); g3 == g1 {
		t.Fatalf("apply did not move the generation (%d)", g3)
	}
	if l.b.last == nil {
		t.Fatal("no snapshot kept for Apply to reuse")
	}
}
