package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/nftables"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

func loadExample(t testing.TB) (*policies.Policy, *rules.Ruleset) {
	t.Helper()
	pol, diags := policies.Load("../examples/port27", policies.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return pol, rs
}

func TestSandboxPassesOnTheExample(t *testing.T) {
	netnstest.RequireRoot(t)
	pol, rs := loadExample(t)
	for _, backend := range []string{"nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			rep, err := Sandbox(context.Background(), SandboxConfig{Policy: pol, Ruleset: rs, Backend: backend, Boundary: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failed() || len(rep.Checks) < len(pol.Tests)+10 {
				var b strings.Builder
				rep.WriteText(&b, false)
				t.Fatalf("sandbox verification:\n%s", b.String())
			}
			var open, filtered int
			for _, c := range rep.Checks {
				switch c.Probe.State {
				case Open:
					open++
				case Filtered:
					filtered++
				}
			}
			if open == 0 || filtered == 0 {
				t.Errorf("expected both open and filtered probes, got %d open, %d filtered", open, filtered)
			}
		})
	}
	assertNoSandboxLeft(t)
}

func TestSandboxFailsWhenRulesAreDamaged(t *testing.T) {
	netnstest.RequireRoot(t)
	pol, rs := loadExample(t)
	damage := func(nsPath string) error {
		return netns.DoPath(nsPath, func() error {
			out, err := exec.Command("nft", "delete", "element", "inet", "portwarden", "nscp-allow4", "{ 198.18.1.7 }").CombinedOutput()
			if err != nil {
				t.Logf("nft: %s", out)
			}
			return err
		})
	}
	rep, err := Sandbox(context.Background(), SandboxConfig{Policy: pol, Ruleset: rs, Backend: "nftables", AfterLoad: damage})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() {
		t.Fatal("verification passed although an allowed element was removed")
	}
	var b strings.Builder
	rep.WriteText(&b, false)
	if !strings.Contains(b.String(), "FAIL 198.18.1.7 -> 198.19.255.1:27: expected open, observed filtered") ||
		!strings.Contains(b.String(), "the firewall refuses an allowed source") {
		t.Errorf("the report does not name the source and the cause:\n%s", b.String())
	}
	assertNoSandboxLeft(t)
}

func TestSandboxCancelledCleansUp(t *testing.T) {
	netnstest.RequireRoot(t)
	pol, rs := loadExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Sandbox(ctx, SandboxConfig{Policy: pol, Ruleset: rs, Backend: "nftables", Boundary: true}); err == nil {
		t.Fatal("a cancelled sandbox reported success")
	}
	assertNoSandboxLeft(t)
}

// TestMain gives this process's namespaces a prefix of their own, so that
// assertNoSandboxLeft sees only sandboxes made here: `make test` runs other
// packages' sandboxes (the CLI, the Ansible collection) at the same time.
func TestMain(m *testing.M) {
	os.Setenv("PORTWARDEN_NETNS_PREFIX", fmt.Sprintf("%sv%d-", netns.Prefix(), os.Getpid()))
	os.Exit(m.Run())
}

func assertNoSandboxLeft(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if mine := netns.Prefix() + "sbx-"; strings.Contains(string(out), mine) {
		t.Errorf("sandbox namespaces (%s*) left behind:\n%s", mine, out)
	}
}

// liveLab is a server with the example's rules and a peer holding an
// allowed and a refused address.
func liveLab(t *testing.T) (server, peer *netns.NS, rs *rules.Ruleset) {
	server = netnstest.New(t, "live-srv")
	peer = netnstest.New(t, "live-peer")
	if err := netns.Veth(server, "lv0", peer, "lv1"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		ns  *netns.NS
		dev string
		p   string
	}{{server, "lv0", "198.18.50.1/16"}, {peer, "lv1", "198.18.1.7/16"}, {peer, "lv1", "198.18.99.1/16"}} {
		if err := step.ns.AddAddr(step.dev, netip.MustParsePrefix(step.p)); err != nil {
			t.Fatal(err)
		}
	}
	var ln net.Listener
	if err := server.Do(func() (err error) { ln, err = net.Listen("tcp", ":27"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptAndClose(ln)
	_, rs = loadExample(t)
	b, _ := nftables.New(backends.Config{NetNS: server.Path()})
	p, err := b.Plan(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return server, peer, rs
}

func TestLiveVerification(t *testing.T) {
	server, peer, rs := liveLab(t)
	live := func(as string) *Report {
		t.Helper()
		rep, err := Live(context.Background(), LiveConfig{Ruleset: rs, Target: "198.18.50.1", As: netip.MustParseAddr(as), Bind: true, NetNS: peer.Path()})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, as := range []string{"198.18.1.7", "198.18.99.1"} {
		if rep := live(as); rep.Failed() || len(rep.Checks) != 1 {
			t.Errorf("live verification as %s failed: %+v", as, rep.Checks)
		}
	}
	// A hand edit on the server: the allowed peer is now refused.
	if _, err := server.Run(context.Background(), "nft", "flush", "set", "inet", "portwarden", "nscp-allow4"); err != nil {
		t.Fatal(err)
	}
	rep := live("198.18.1.7")
	if !rep.Failed() || rep.Checks[0].Probe.State != Filtered {
		t.Errorf("live verification passed after the rules were changed by hand: %+v", rep.Checks)
	}
	if rep := live("198.18.99.1"); rep.Failed() {
		t.Errorf("the refused peer is still refused, yet verification failed: %+v", rep.Checks)
	}
}

func TestProbeStates(t *testing.T) {
	server, peer, _ := liveLab(t)
	// Port 28: nothing listens (closed); a reject rule on 29.
	if _, err := server.Run(context.Background(), "nft", "add rule inet portwarden input tcp dport 29 reject with icmpx admin-prohibited"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src  string
		port uint16
		want State
	}{{"198.18.1.7", 27, Open}, {"198.18.99.1", 27, Filtered}, {"198.18.1.7", 28, Closed}, {"198.18.1.7", 29, Rejected}} {
		var r ProbeResult
		peer.Do(func() error {
			r = Probe(context.Background(), ProbeSpec{Protocol: rules.TCP, Target: netip.MustParseAddrPort("198.18.50.1:" + itoa(c.port)), Source: netip.MustParseAddr(c.src), Timeout: 500 * time.Millisecond})
			return nil
		})
		if r.State != c.want {
			t.Errorf("%s -> :%d = %s (%s), want %s", c.src, c.port, r.State, r.Detail, c.want)
		}
	}
	// No route at all: rejected, and recognisably the network's fault.
	var r ProbeResult
	peer.Do(func() error {
		r = Probe(context.Background(), ProbeSpec{Protocol: rules.TCP, Target: netip.MustParseAddrPort("[2001:2:99::1]:27"), Timeout: 500 * time.Millisecond})
		return nil
	})
	if !r.IsNetworkUnreachable() {
		t.Errorf("probe without a route: %+v", r)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func TestJudgeHints(t *testing.T) {
	for _, c := range []struct {
		verdict  rules.Verdict
		observed State
		detail   string
		hint     string
	}{
		{rules.Accept, Filtered, "", "the firewall refuses an allowed source"},
		{rules.Accept, Closed, "", "nothing listens on the port"},
		{rules.Accept, Rejected, "connect: network is unreachable", "the network is unreachable"},
		{rules.Drop, Open, "", "a refused source gets through"},
		{rules.Reject, Rejected, "", "or reject_with differs"},
	} {
		ch := Check{Verdict: c.verdict, Probe: ProbeResult{State: c.observed, Detail: c.detail}}
		ch.judge()
		if ch.Pass || !strings.Contains(ch.Hint, c.hint) {
			t.Errorf("%s observed %s: pass %v hint %q", c.verdict, c.observed, ch.Pass, ch.Hint)
		}
	}
}

// TestRejectOrNoListener: a closed probe is the firewall's reset where the
// policy rejects, no listener where it accepts, and ambiguous only where
// no listener is known and the policy rejects with a reset.
func TestRejectOrNoListener(t *testing.T) {
	for _, c := range []struct {
		verdict   rules.Verdict
		answer    rules.RejectWith
		listening bool
		observed  State
		pass      bool
		by        string
	}{
		{rules.Reject, rules.TCPReset, true, Closed, true, "firewall"},
		{rules.Reject, "", false, Closed, true, "firewall or no listener"},
		{rules.Reject, rules.ICMPPortUnreachable, true, Closed, true, "firewall"},
		{rules.Reject, rules.ICMPAdminProhibited, true, Rejected, true, ""},
		{rules.Reject, rules.ICMPAdminProhibited, true, Closed, false, "firewall"},
		{rules.Accept, rules.TCPReset, false, Closed, false, "no listener"},
		{rules.Accept, "", true, Closed, false, "firewall"},
	} {
		ch := Check{Verdict: c.verdict, RejectWith: c.answer, listening: c.listening, Probe: ProbeResult{State: c.observed}}
		ch.judge()
		if ch.Pass != c.pass || ch.AnsweredBy != c.by {
			t.Errorf("%s/%q listening=%v observed %s: pass %v answered by %q, want %v %q (hint %q)", c.verdict, c.answer, c.listening, c.observed, ch.Pass, ch.AnsweredBy, c.pass, c.by, ch.Hint)
		}
		if c.verdict == rules.Accept && ch.RejectWith != "" {
			t.Errorf("reject_with reported for an accepted source: %+v", ch)
		}
	}
}

func TestSandboxUDP(t *testing.T) {
	netnstest.RequireRoot(t)
	rs := &rules.Ruleset{Exposures: []rules.Exposure{
		{Name: "dns", Protocol: rules.UDP, Ports: []rules.PortRange{{First: 53, Last: 53}}, Default: rules.Reject,
			Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:2:0:1::/64"))},
		{Name: "syslog", Protocol: rules.UDP, Ports: []rules.PortRange{{First: 514, Last: 514}}, Default: rules.Drop,
			Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"))},
	}}
	rep, err := Sandbox(context.Background(), SandboxConfig{Ruleset: rs, Backend: "nftables", Boundary: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[State]bool{}
	for _, c := range rep.Checks {
		seen[c.Probe.State] = true
	}
	// dns rejects: ICMP port unreachable, the UDP default, reads as closed.
	if rep.Failed() || !seen[Open] || !seen[Closed] || !seen[Filtered] {
		var b strings.Builder
		rep.WriteText(&b, false)
		t.Fatalf("UDP sandbox verification (states seen %v):\n%s", seen, b.String())
	}
}
