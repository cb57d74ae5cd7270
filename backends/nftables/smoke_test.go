package nftables

import (
	"context"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

func examplePolicy(t *testing.T) (*policies.Policy, *rules.Ruleset) {
	t.Helper()
	pol, diags := policies.Load("../../examples/port27", policies.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return pol, rs
}

func TestSmoke(t *testing.T) {
	ns := netnstest.New(t, "smoke")
	_, rs := examplePolicy(t)
	b, _ := New(backends.Config{NetNS: ns.Path()})
	ctx := context.Background()
	plan, err := b.Plan(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	out, _ := ns.Run(ctx, "nft", "list", "ruleset")
	t.Logf("%s", out)
	plan2, err := b.Plan(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !plan2.Empty() {
		t.Fatalf("second plan not empty: drift %v diff %+v", plan2.Current.Drift, plan2.Diff)
	}
}
