package iptables

import (
	"context"
	"github.com/portwarden/portwarden/internal/netns"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portwarden/portwarden/backends"
)

// hooks is this backend's side of the shared conformance suite
// (backends/backendtest), for one variant: how to open it in a namespace,
// count its writes, install foreign rules shaped like Docker's and
// firewalld's, snapshot them, and damage owned objects.
type hooks struct {
	variant Variant
	writes  atomic.Int64 // restore commits by every backend these hooks opened
}

// Open returns the backend working in nsPath, with writes counted.
func (h *hooks) Open(t *testing.T, nsPath string) backends.Backend {
	t.Helper()
	b, err := newBackend(context.Background(), backends.Config{NetNS: nsPath}, WithVariant(h.variant),
		withRunner(func(r runner) runner { return &sharedCounter{runner: r, n: &h.writes} }))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Writes counts iptables-restore commits: the backend's only writes.
func (h *hooks) Writes(t *testing.T) int { return int(h.writes.Load()) }

// sharedCounter counts restores into a counter shared by several backends.
type sharedCounter struct {
	runner
	n *atomic.Int64
}

func (c *sharedCounter) restore(ctx context.Context, fam family, text string) error {
	c.n.Add(1)
	return c.runner.restore(ctx, fam, text)
}

func (h *hooks) run(t *testing.T, nsPath string, fam family, tool string, args ...string) string {
	t.Helper()
	bin := "iptables-" + string(h.variant) + tool
	if fam == ipv6 {
		bin = "ip6tables-" + string(h.variant) + tool
	}
	var out []byte
	err := netns.DoPath(nsPath, func() error {
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

// DamageKinds are what a person might do by hand to the owned rules.
func (h *hooks) DamageKinds() []string {
	return []string{"delete-rule", "flush-chain", "foreign-rule", "delete-jump", "jump-not-first", "flush-top", "remove-ipv6"}
}

// Damage breaks owned objects of exposure (in IPv4, unless the kind says
// otherwise) with the variant's own iptables binary.
func (h *hooks) Damage(t *testing.T, nsPath, kind, exposure string) {
	t.Helper()
	chain := exposureChain(exposure)
	ipt := func(fam family, args ...string) { h.run(t, nsPath, fam, "", args...) }
	switch kind {
	case "delete-rule": // one allow rule
		for _, line := range strings.Split(h.run(t, nsPath, ipv4, "", "-S", chain), "\n") {
			if strings.Contains(line, ruleComment(exposure, kindAllow)) {
				args, err := SplitArgs(strings.Replace(line, "-A ", "-D ", 1))
				if err != nil {
					t.Fatal(err)
				}
				ipt(ipv4, args...)
				return
			}
		}
		t.Fatalf("no allow rule in %s", chain)
	case "flush-chain":
		ipt(ipv4, "-F", chain)
	case "foreign-rule":
		ipt(ipv4, "-I", chain, "1", "-s", "198.18.0.4", "-j", "ACCEPT")
	case "delete-jump":
		ipt(ipv4, "-D", "INPUT", "-m", "comment", "--comment", jumpComment, "-j", topChain)
	case "jump-not-first":
		ipt(ipv4, "-I", "INPUT", "1", "-s", "198.18.0.4", "-j", "ACCEPT")
	case "flush-top":
		ipt(ipv4, "-F", topChain)
	case "remove-ipv6": // everything portwarden owns in IPv6, by hand
		ipt(ipv6, "-D", "INPUT", "-m", "comment", "--comment", jumpComment, "-j", topChain)
		ipt(ipv6, "-F", topChain)
		ipt(ipv6, "-F", chain)
		ipt(ipv6, "-X", topChain)
		ipt(ipv6, "-X", chain)
	default:
		t.Fatalf("unknown damage %q", kind)
	}
}
