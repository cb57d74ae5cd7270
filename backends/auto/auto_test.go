package auto

import (
	"context"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

func TestOpenByName(t *testing.T) {
	if _, _, err := Open("pf", backends.Config{}); err == nil || !strings.Contains(err.Error(), "use auto, nftables or iptables") {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestAutoProbesNFTablesInNamespace(t *testing.T) {
	ns := netnstest.New(t, "auto")
	if err := probeNFTables(ns.Path()); err != nil {
		t.Fatalf("nf_tables probe in a fresh namespace: %v", err)
	}
	if err := probeNFTables("/run/netns/pwt-does-not-exist"); err == nil {
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
	t.Logf("empty namespace: %s: %s", b.Name(), reason)
	if b.Name() == "iptables" && strings.Contains(reason, "legacy holds") {
		t.Fatalf("empty namespace judged as holding legacy rules: %s", reason)
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
