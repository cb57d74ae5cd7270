package nftables

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// oldLayout is the script portwarden rendered before per-element
// counters and seen sets: the same, without them.
func oldLayout(script string) string {
	script = strings.ReplaceAll(script, "\t\tcounter\n", "")
	script = regexp.MustCompile(`(?m)^\tset [^ ]+-seen[46] \{\n(\t\t.*\n)*\t\}\n`).ReplaceAllString(script, "")
	return regexp.MustCompile(`(?m)^.*(allow|grant)[46]-new.*\n`).ReplaceAllString(script, "")
}

// TestOldLayoutUpgraded: a table written before per-element counters
// (sets without them, no seen sets) is drift that names the reason, and
// one apply upgrades it; then the plan is empty and the elements count.
func TestOldLayoutUpgraded(t *testing.T) {
	ns := netnstest.New(t, "upgrade")
	_, rs := examplePolicy(t)
	b, _ := New(backends.Config{NetNS: ns.Path()})
	script, err := b.Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	old := oldLayout(script)
	if strings.Contains(old, "seen") || strings.Contains(old, "counter\n") {
		t.Fatalf("the old layout still has the new objects:\n%s", old)
	}
	nft(t, ns.Path(), old)
	if _, err := b.(backends.UsageReader).Usage(context.Background()); err == nil || !strings.Contains(err.Error(), "run portwarden apply") {
		t.Errorf("usage of the old layout: %v, want an error that says to apply", err)
	}
	plan := mustPlan(t, b.(*Backend), rs)
	if plan.Empty() || !strings.Contains(strings.Join(plan.Current.Drift, "\n"), "no per-element counters") {
		t.Fatalf("the old layout is not drift naming the counters: %v", plan.Current.Drift)
	}
	if err := b.Apply(context.Background(), plan); err != nil {
		t.Fatalf("upgrading the old layout: %v", err)
	}
	fresh, _ := New(backends.Config{NetNS: ns.Path()})
	if plan := mustPlan(t, fresh.(*Backend), rs); !plan.Empty() {
		t.Fatalf("after the upgrade: drift %v diff %+v", plan.Current.Drift, plan.Diff)
	}
	out := nft(t, ns.Path(), "list ruleset\n")
	if !strings.Contains(out, "counter packets 0 bytes 0") || !strings.Contains(out, "flags dynamic,timeout") {
		t.Errorf("after the upgrade the sets lack counters or seen sets:\n%s", out)
	}
	u, err := fresh.(backends.UsageReader).Usage(context.Background())
	if err != nil || len(u.Elements) == 0 {
		t.Fatalf("usage after the upgrade: %v, %+v", err, u)
	}
}
