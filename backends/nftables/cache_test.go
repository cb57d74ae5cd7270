package nftables

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// TestCacheAcrossProcesses: a fresh backend (a new process) trusts the
// state directory while the generation holds, and after a foreign write
// moved it, a one-element hand edit is still reported as drift.
func TestCacheAcrossProcesses(t *testing.T) {
	ns := netnstest.New(t, "cache")
	ctx := context.Background()
	stateDir := cacheRoot(t, ns.Path())
	fresh := func() *Backend {
		b, _ := New(backends.Config{NetNS: ns.Path(), StateDir: stateDir})
		return b.(*Backend)
	}
	rs := benchRuleset(200)
	b := fresh()
	plan, err := b.Plan(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}

	// A new process: the cache answers, the kernel holds what was written.
	b = fresh()
	if !b.Holds(rs.Fingerprint()) {
		t.Fatal("Holds is false right after apply")
	}
	cookie, _ := cookieAndGen(t, b)
	if b.loadCache(cookie, mustGen(t, b)) == nil {
		t.Fatal("the cache written by apply does not load")
	}
	plan, err = b.Plan(ctx, rs)
	if err != nil || !plan.Empty() {
		t.Fatalf("plan from the cache: err %v, drift %v diff %+v", err, plan.Current.Drift, plan.Diff)
	}

	// Another program writes; then someone deletes one element by hand.
	nft(t, ns.Path(), "add table inet pwt-foreign\n")
	if fresh().Holds(rs.Fingerprint()) {
		t.Fatal("Holds is true after a foreign write")
	}
	victim := rs.Exposures[0].Allow.V4[7].Addr()
	nft(t, ns.Path(), fmt.Sprintf("delete element inet %s %s { %s }\n", tableName, setName("nscp", roleAllow4), victim))
	b = fresh()
	plan, err = b.Plan(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	// That read was cached for the next process, at this generation.
	if cookie, gen := cookieAndGen(t, b); fresh().loadCache(cookie, gen) == nil {
		t.Error("a read of the kernel was not cached")
	}
	if plan.Empty() || len(plan.Diff.Exposures) != 1 || len(plan.Diff.Exposures[0].Allow.Added) != 1 ||
		plan.Diff.Exposures[0].Allow.Added[0] != netip.PrefixFrom(victim, 32) {
		t.Fatalf("the deleted element %s is not in the plan: drift %v diff %+v", victim, plan.Current.Drift, plan.Diff)
	}
	if err := b.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if plan, err := fresh().Plan(ctx, rs); err != nil || !plan.Empty() {
		t.Fatalf("after repair: err %v, plan %+v", err, plan)
	}

	// A hand edit on its own moves the generation too.
	nft(t, ns.Path(), fmt.Sprintf("add element inet %s %s { 198.19.255.1 }\n", tableName, setName("nscp", roleAllow4)))
	if plan, err := fresh().Plan(ctx, rs); err != nil || plan.Empty() {
		t.Fatalf("an added element is not seen: err %v", err)
	}

	// A damaged cache file is ignored, never trusted.
	cookie, gen := cookieAndGen(t, b)
	path := cacheFile(stateDir, cookie)
	fresh().Plan(ctx, rs) // the read writes the cache at this generation
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// In the key, which is read before the checksum (its boot and its
	// fingerprint, which leaves it current), in the body, and cut short
	// after the key.
	fp := bytes.Index(data, []byte(`"fingerprint":"`)) + len(`"fingerprint":"`) + 3
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"boot in the key", flipped(data, len(cacheMagic)+4+12)},
		{"fingerprint in the key", flipped(data, fp)},
		{"body", flipped(data, len(data)/2)},
		{"cut after the key", data[:len(cacheMagic)+4+int(binary.BigEndian.Uint32(data[len(cacheMagic):]))+10]},
	} {
		if err := os.WriteFile(path, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if fresh().loadCache(cookie, gen) != nil {
			t.Errorf("a cache damaged in the %s loaded", c.name)
		}
	}
	if plan, err := fresh().Plan(ctx, rs); err != nil || plan.Empty() {
		t.Fatalf("with a damaged cache the added element is not seen: err %v", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}

	// A range split by hand into two elements is the same model but not
	// the elements portwarden writes: such a read is not cached, so no
	// later change names elements the kernel does not have.
	fresh().Apply(ctx, mustPlan(t, fresh(), rs))
	nft(t, ns.Path(), fmt.Sprintf("add element inet %s %s { 198.19.200.0/31 }\ndelete element inet %s %s { 198.19.200.0/31 }\nadd element inet %s %s { 198.19.200.0, 198.19.200.1 }\n",
		tableName, setName("nscp", roleAllow4), tableName, setName("nscp", roleAllow4), tableName, setName("nscp", roleAllow4)))
	split := rs.Clone()
	split.Exposures[0].Allow = rules.NewPrefixes(append(split.Exposures[0].Allow.All(), netip.MustParsePrefix("198.19.200.0/31"))...)
	b = fresh()
	if plan := mustPlan(t, b, split); !plan.Empty() {
		t.Fatalf("the split range is not the model's: drift %v diff %+v", plan.Current.Drift, plan.Diff)
	}
	if cookie, gen := cookieAndGen(t, b); fresh().loadCache(cookie, gen) != nil {
		t.Fatal("a set in a form portwarden does not write was cached")
	}
	if err := fresh().Apply(ctx, mustPlan(t, fresh(), rs)); err != nil {
		t.Fatalf("removing the split range: %v", err)
	}
	if plan := mustPlan(t, fresh(), rs); !plan.Empty() {
		t.Fatalf("after removing the split range: %+v", plan.Diff)
	}
}

func mustPlan(t *testing.T, b *Backend, rs *rules.Ruleset) *backends.Plan {
	t.Helper()
	plan, err := b.Plan(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func cookieAndGen(t *testing.T, b *Backend) (uint64, uint32) {
	t.Helper()
	s := &snapshot{}
	b.stamp(s)
	if s.cookie == 0 {
		t.Fatal("no namespace cookie")
	}
	return s.cookie, s.gen
}

func mustGen(t *testing.T, b *Backend) uint32 {
	_, gen := cookieAndGen(t, b)
	return gen
}

// TestRenderLoadsWithoutDrift: the script compile prints, loaded with
// nft -f (the way people persist rules), is what apply would have
// written: the plan is empty, and the next apply writes nothing.
func TestRenderLoadsWithoutDrift(t *testing.T) {
	ns := netnstest.New(t, "render")
	_, rs := examplePolicy(t)
	b, _ := New(backends.Config{NetNS: ns.Path()})
	script, err := b.Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	nft(t, ns.Path(), script)
	plan := mustPlan(t, b.(*Backend), rs)
	if !plan.Empty() {
		t.Fatalf("nft -f of the rendered script: drift %v diff %+v", plan.Current.Drift, plan.Diff)
	}
}

// flipped is data with the byte at i inverted.
func flipped(data []byte, i int) []byte {
	out := slices.Clone(data)
	out[i] ^= 0xff
	return out
}
