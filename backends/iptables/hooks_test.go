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
	// setWrites counts ipset operations (create, add, del, swap, destroy).
	setWrites atomic.Int64
}

// Open returns the backend working in nsPath, with writes counted.
func (h *hooks) Open(t *testing.T, nsPath string) backends.Backend {
	t.Helper()
	b, err := newBackend(context.Background(), backends.Config{NetNS: nsPath}, WithVariant(h.variant),
		withRunner(func(r runner) runner { return &sharedCounter{runner: r, n: &h.writes} }),
		withSetRunner(func(r setRunner) setRunner { return &setCounter{setRunner: r, n: &h.setWrites} }))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Writes counts iptables-restore commits and ipset operations.
func (h *hooks) Writes(t *testing.T) int { return int(h.writes.Load() + h.setWrites.Load()) }

// setCounter counts ipset operations into a shared counter.
type setCounter struct {
	setRunner
	n *atomic.Int64
}

func (c *setCounter) write(ops []setOp) error {
	c.n.Add(int64(len(ops)))
	return c.setRunner.write(ops)
}

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
	// Sets of other tools, one named like portwarden's.
	ipsetCLI(t, nsPath, "", "create", "docker-allowed", "hash:ip")
	ipsetCLI(t, nsPath, "", "add", "docker-allowed", "198.18.0.4")
	ipsetCLI(t, nsPath, "", "create", "PW-LOOKALIKE-a4", "hash:net")
	ipsetCLI(t, nsPath, "", "add", "PW-LOOKALIKE-a4", "198.18.0.0/24")
	for _, fam := range families {
		for _, args := range foreignSetup {
			h.run(t, nsPath, fam, "", args...)
		}
	}
	h.run(t, nsPath, ipv4, "", "-A", "IN_public_allow", "-m", "set", "--match-set", "docker-allowed", "src", "-j", "ACCEPT")
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
	for _, line := range strings.Split(ipsetCLI(t, nsPath, "", "save"), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			if _, _, _, owned := ownedSetName(f[1]); owned {
				continue
			}
		}
		all = append(all, line)
	}
	return withoutOwned(strings.Join(all, "\n"))
}

// DamageKinds are what a person might do by hand to the owned rules.
func (h *hooks) DamageKinds() []string {
	return []string{"delete-rule", "flush-chain", "foreign-rule", "delete-jump", "jump-not-first", "flush-top", "remove-ipv6",
		"set-add-element", "set-del-element", "set-flush", "set-replaced", "set-destroyed"}
}

// Damage breaks owned objects of exposure (in IPv4, unless the kind says
// otherwise) with the variant's own iptables binary.
func (h *hooks) Damage(t *testing.T, nsPath, kind, exposure string) {
	t.Helper()
	chain := exposureChain(exposure)
	ipt := func(fam family, args ...string) { h.run(t, nsPath, fam, "", args...) }
	switch kind {
	case "set-add-element": // a source let in by hand
		ipsetCLI(t, nsPath, "", "add", setName(exposure, ipv4, roleAllow), "198.18.0.4")
	case "set-del-element":
		out := ipsetCLI(t, nsPath, "", "list", setName(exposure, ipv4, roleAllow))
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "198.18.") {
				ipsetCLI(t, nsPath, "", "del", setName(exposure, ipv4, roleAllow), f[0])
				return
			}
		}
		t.Fatalf("no element in %s", out)
	case "set-flush":
		ipsetCLI(t, nsPath, "", "flush", setName(exposure, ipv6, roleAllow))
	case "set-replaced": // swapped with a set of the same type made by hand
		name := setName(exposure, ipv4, roleAllow)
		ipsetCLI(t, nsPath, "", "create", "handmade", "hash:net", "family", "inet")
		ipsetCLI(t, nsPath, "", "add", "handmade", "198.18.0.0/24")
		ipsetCLI(t, nsPath, "", "swap", name, "handmade")
	case "set-destroyed": // the chain emptied by hand, then its set destroyed
		ipt(ipv4, "-F", chain)
		ipsetCLI(t, nsPath, "", "destroy", setName(exposure, ipv4, roleAllow))
		ipsetCLI(t, nsPath, "", "destroy", setName(exposure, ipv4, roleDeny))
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

// ipsetCLI runs the ipset command in the namespace (tests only: the
// backend itself speaks netlink).
func ipsetCLI(t *testing.T, nsPath, stdin string, args ...string) string {
	t.Helper()
	var out []byte
	err := netns.DoPath(nsPath, func() error {
		cmd := exec.Command("ipset", args...)
		cmd.Stdin = strings.NewReader(stdin)
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("ipset %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
