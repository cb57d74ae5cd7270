package iptables

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/rules"
)

// hooks is this backend's side of the shared conformance suite
// (backends/backendtest): how to open it in a namespace, install foreign
// rules shaped like Docker's and firewalld's, snapshot them, observe
// writes and damage owned objects. Until the suite exists, TestKernelHooks
// exercises them so they are ready to hand over.
type hooks struct {
	variant Variant
	writes  *countingRunner
}

// Open returns the backend working in nsPath, with writes counted.
func (h *hooks) Open(t *testing.T, nsPath string) backends.Backend {
	t.Helper()
	b, err := newBackend(context.Background(), backends.Config{NetNS: nsPath}, WithVariant(h.variant),
		withRunner(func(r runner) runner { h.writes = &countingRunner{runner: r}; return h.writes }))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Writes is how many restore commits the last opened backend made.
func (h *hooks) Writes() int { return h.writes.count() }

func (h *hooks) run(t *testing.T, nsPath string, fam family, tool string, args ...string) string {
	t.Helper()
	bin := "iptables-" + string(h.variant) + tool
	if fam == ipv6 {
		bin = "ip6tables-" + string(h.variant) + tool
	}
	var out []byte
	err := inNetNS(nsPath, func() error {
		var err error
		out, err = exec.Command(bin, args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// InstallForeign adds Docker- and firewalld-shaped chains in both families.
func (h *hooks) InstallForeign(t *testing.T, nsPath string) {
	t.Helper()
	for _, fam := range families {
		for _, args := range foreignSetup {
			h.run(t, nsPath, fam, "", args...)
		}
	}
}

// Foreign is everything in both filter tables that portwarden does not
// own, without counters: it must not change through apply and destroy.
func (h *hooks) Foreign(t *testing.T, nsPath string) string {
	t.Helper()
	var all []string
	for _, fam := range families {
		for _, line := range strings.Split(h.run(t, nsPath, fam, "-save", "-t", "filter"), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, ":") {
				if i := strings.LastIndexByte(line, '['); i > 0 {
					line = line[:i]
				}
			}
			all = append(all, line)
		}
	}
	return withoutOwned(strings.Join(all, "\n"))
}

// Damage kinds every backend understands.
const (
	damageDeleteRule = "delete-rule"  // one allow rule of the first exposure
	damageFlush      = "flush"        // the first exposure's chain
	damageForeign    = "foreign-rule" // an ACCEPT added by hand in an owned chain
	damageJump       = "delete-jump"  // the hook into INPUT
)

// Damage breaks owned objects of exposure in IPv4 the way a person would.
func (h *hooks) Damage(t *testing.T, nsPath, kind, exposure string) {
	t.Helper()
	chain := exposureChain(exposure)
	switch kind {
	case damageDeleteRule:
		rulesText := h.run(t, nsPath, ipv4, "", "-S", chain)
		for _, line := range strings.Split(rulesText, "\n") {
			if strings.Contains(line, ruleComment(exposure, kindAllow)) {
				args, err := splitArgs(strings.Replace(line, "-A ", "-D ", 1))
				if err != nil {
					t.Fatal(err)
				}
				h.run(t, nsPath, ipv4, "", args...)
				return
			}
		}
		t.Fatalf("no allow rule in %s", chain)
	case damageFlush:
		h.run(t, nsPath, ipv4, "", "-F", chain)
	case damageForeign:
		h.run(t, nsPath, ipv4, "", "-I", chain, "1", "-s", "198.18.0.4", "-j", "ACCEPT")
	case damageJump:
		h.run(t, nsPath, ipv4, "", "-D", "INPUT", "-m", "comment", "--comment", jumpComment, "-j", topChain)
	default:
		t.Fatalf("unknown damage %q", kind)
	}
}

func TestKernelHooks(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		ns, err := netns.New("ipt-hooks")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		h := &hooks{variant: v}
		b := h.Open(t, ns.Path())
		h.InstallForeign(t, ns.Path())
		foreign := h.Foreign(t, ns.Path())
		rs := labRuleset(rules.Reject)
		ctx := context.Background()
		apply := func() *backends.Plan {
			t.Helper()
			p, err := b.Plan(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Apply(ctx, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
		apply()
		if h.Foreign(t, ns.Path()) != foreign {
			t.Fatal("apply changed foreign rules")
		}
		for _, kind := range []string{damageDeleteRule, damageFlush, damageForeign, damageJump} {
			h.Damage(t, ns.Path(), kind, "nscp")
			writes := h.Writes()
			if p := apply(); p.Empty() {
				t.Fatalf("%s: plan did not see the damage", kind)
			}
			if h.Writes() == writes {
				t.Fatalf("%s: repair wrote nothing", kind)
			}
			writes = h.Writes()
			if p := apply(); !p.Empty() || h.Writes() != writes {
				t.Fatalf("%s: not repaired in one apply (drift %q)", kind, p.Current.Drift)
			}
		}
		if err := b.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		if h.Foreign(t, ns.Path()) != foreign {
			t.Fatal("destroy changed foreign rules")
		}
	})
}
