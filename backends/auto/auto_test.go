package auto

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

func TestOpenByName(t *testing.T) {
	if _, _, err := Open("pf", backends.Config{}); err == nil || !strings.Contains(err.Error(), "use auto, nftables or iptables") {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestAutoProbesNFTablesInNamespace(t *testing.T) {
	ns := netnstest.New(t, "auto")
	if installed, _, err := probeNFTables(ns.Path()); err != nil || installed {
		t.Fatalf("nf_tables probe in a fresh namespace: %v (installed %v)", err, installed)
	}
	if _, _, err := probeNFTables("/run/netns/pwt-does-not-exist"); err == nil {
		t.Fatal("probe of a missing namespace succeeded")
	}
}

func TestAutoChoosesIptablesBesideLegacyRules(t *testing.T) {
	ns := netnstest.New(t, "auto")
	b, reason, err := Open("auto", backends.Config{NetNS: ns.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if reason == "" {
		t.Fatal("no reason given")
	}
	if b.Name() != "nftables" || !strings.Contains(reason, "nf_tables works") {
		t.Fatalf("empty namespace: %s: %q, want nftables", b.Name(), reason)
	}

	if _, err := ns.Run(context.Background(), "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"); err != nil {
		t.Fatal(err)
	}
	b, reason, err = Open("auto", backends.Config{NetNS: ns.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "iptables" || !strings.Contains(reason, "iptables-legacy holds 1 rule here") || !strings.Contains(reason, "iptables-legacy") {
		t.Fatalf("with a legacy rule: %s: %q", b.Name(), reason)
	}
	t.Logf("legacy rule present: %s", reason)
}

func TestAutoStaysWithInstalledIptables(t *testing.T) {
	ns := netnstest.New(t, "auto")
	cfg := backends.Config{NetNS: ns.Path()}
	ipt, _, err := Open("iptables", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := ipt.Plan(ctx, labRuleset())
	if err != nil {
		t.Fatal(err)
	}
	if err := ipt.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	b, reason, err := Open("auto", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "iptables" || !strings.Contains(reason, "already installed") {
		t.Fatalf("with portwarden's iptables chains installed: %s: %q", b.Name(), reason)
	}
}

func TestAutoStaysWithInstalledNftables(t *testing.T) {
	ns := netnstest.New(t, "auto")
	cfg := backends.Config{NetNS: ns.Path()}
	nb, _, err := Open("nftables", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := nb.Plan(ctx, labRuleset())
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Legacy rules appearing later must not move portwarden to iptables.
	if _, err := ns.Run(ctx, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"); err != nil {
		t.Fatal(err)
	}
	b, reason, err := Open("auto", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "nftables" || !strings.Contains(reason, "already installed") {
		t.Fatalf("with portwarden's nftables table installed: %s: %q", b.Name(), reason)
	}
}

func labRuleset() *rules.Ruleset {
	return &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Drop, Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.0.2/32")),
	}}}
}
