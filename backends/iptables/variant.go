package iptables

import (
	"context"
	"fmt"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/nfgen"
	"os"
	"os/exec"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"

	"github.com/portwarden/portwarden/backends"
)

// Variant is which iptables binaries the backend drives.
type Variant string

const (
	// NFT is iptables-nft (xtables-nft-multi): iptables syntax, rules kept
	// in nf_tables.
	NFT Variant = "nft"
	// Legacy is iptables-legacy (xtables-legacy-multi): the x_tables
	// kernel interface.
	Legacy Variant = "legacy"
)

// VariantEnv overrides detection: PORTWARDEN_IPTABLES=nft or legacy.
const VariantEnv = "PORTWARDEN_IPTABLES"

// checkBinaries confirms that the variant's four binaries exist, using
// go-iptables to find the main ones and read their version.
func checkBinaries(v Variant) error {
	for _, proto := range []goipt.Protocol{goipt.ProtocolIPv4, goipt.ProtocolIPv6} {
		name := "iptables-" + string(v)
		if proto == goipt.ProtocolIPv6 {
			name = "ip6tables-" + string(v)
		}
		ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(name))
		if err != nil {
			return fmt.Errorf("%s: %v (install the iptables package, which provides both variants): %w", name, err, backends.ErrUnsupported)
		}
		if a, b, _ := ipt.GetIptablesVersion(); a < 1 || (a == 1 && b < 6) {
			return fmt.Errorf("%s is version %d.%d; portwarden needs 1.6 or newer: %w", name, a, b, backends.ErrUnsupported)
		}
		for _, tool := range []string{"-save", "-restore"} {
			if _, err := exec.LookPath(name + tool); err != nil {
				return fmt.Errorf("%s%s is not installed: %w", name, tool, backends.ErrUnsupported)
			}
		}
	}
	return nil
}

// variantContents is what one variant's binaries see in the namespace.
type variantContents struct {
	rules int  // rules in any table of either family
	owned bool // portwarden's chains or jump are there
	// saved is each family's iptables-save -c output, which the backend
	// reads its first state from instead of running the binaries again;
	// gen is the nf_tables generation before it was taken (nft, genOK).
	saved [2]string
	gen   uint32
	genOK bool
}

// inspect counts what a variant holds. For legacy it first reads the
// per-namespace list of x_tables tables, so that merely looking does not
// create legacy tables in a namespace that has none.
func inspect(ctx context.Context, v Variant, nsPath string) (variantContents, error) {
	var c variantContents
	x := execRunner{variant: v, nsPath: nsPath}
	if v == NFT {
		g, err := nfgen.Generation(nsPath)
		c.gen, c.genOK = g, err == nil
	}
	for _, fam := range families {
		if v == Legacy {
			n, err := legacyTables(nsPath, fam)
			if err != nil {
				return c, err
			}
			if n == 0 {
				continue
			}
		}
		out, err := x.exec(ctx, x.binary(fam, "-save"), nil, "-c")
		if err != nil {
			return c, fmt.Errorf("read the %s rules with iptables-%s: %w", fam, v, err)
		}
		c.saved[fam] = out
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "[") {
				if _, rest, ok := strings.Cut(line, "] "); ok {
					line = rest
				}
			}
			if strings.HasPrefix(line, "-A ") {
				c.rules++
			}
			if strings.HasPrefix(line, ":"+topChain+" ") || strings.HasSuffix(line, "-j "+topChain) {
				c.owned = true
			}
		}
	}
	return c, nil
}

// legacyTables counts the x_tables tables of a family in the namespace.
func legacyTables(nsPath string, fam family) (int, error) {
	file := "/proc/thread-self/net/ip_tables_names"
	if fam == ipv6 {
		file = "/proc/thread-self/net/ip6_tables_names"
	}
	var data []byte
	err := netns.DoPath(nsPath, func() error {
		var err error
		data, err = os.ReadFile(file)
		if os.IsNotExist(err) {
			return nil // x_tables not loaded at all: no legacy tables
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	return len(strings.Fields(string(data))), nil
}

// LegacyRules counts the rules iptables-legacy holds in the namespace at
// nsPath (both families, every table). backends/auto uses it to decide
// whether nftables can be chosen without splitting the firewall between
// two systems.
func LegacyRules(ctx context.Context, nsPath string) (int, error) {
	if checkBinaries(Legacy) != nil {
		// Without the legacy binaries nobody can have written legacy
		// rules worth keeping beside; report none.
		return 0, nil
	}
	c, err := inspect(ctx, Legacy, nsPath)
	return c.rules, err
}

// Installed reports which variant holds portwarden's chains in the
// namespace at nsPath, if any. backends/auto uses it so that a host set up
// with the iptables backend keeps being managed by it.
func Installed(ctx context.Context, nsPath string) (Variant, bool, error) {
	for _, v := range []Variant{NFT, Legacy} {
		if checkBinaries(v) != nil {
			continue
		}
		c, err := inspect(ctx, v, nsPath)
		if err != nil {
			return "", false, err
		}
		if c.owned {
			return v, true, nil
		}
	}
	return "", false, nil
}

// chooseVariant picks the binaries and says why. Order: an explicit
// choice; the variant that already holds portwarden's chains; the only
// variant holding any rules; the variant the system's `iptables` command
// is (the distribution's alternatives); nft.
func chooseVariant(ctx context.Context, explicit Variant, nsPath string) (Variant, string, error) {
	v, reason, _, err := chooseVariantContents(ctx, explicit, nsPath)
	return v, reason, err
}

// chooseVariantContents is chooseVariant, also returning what the chosen
// variant held when it was inspected (nil when nothing was inspected).
func chooseVariantContents(ctx context.Context, explicit Variant, nsPath string) (Variant, string, *variantContents, error) {
	v, reason, contents, err := decideVariant(ctx, explicit, nsPath)
	if err != nil {
		return "", "", nil, err
	}
	if c, ok := contents[v]; ok {
		return v, reason, &c, nil
	}
	return v, reason, nil, nil
}

func decideVariant(ctx context.Context, explicit Variant, nsPath string) (Variant, string, map[Variant]variantContents, error) {
	if explicit != "" {
		if err := checkBinaries(explicit); err != nil {
			return "", "", nil, err
		}
		return explicit, fmt.Sprintf("iptables-%s chosen explicitly", explicit), nil, nil
	}
	if env := os.Getenv(VariantEnv); env != "" {
		v := Variant(env)
		if v != NFT && v != Legacy {
			return "", "", nil, fmt.Errorf("%s=%q: use nft or legacy", VariantEnv, env)
		}
		if err := checkBinaries(v); err != nil {
			return "", "", nil, err
		}
		return v, fmt.Sprintf("iptables-%s chosen by %s", v, VariantEnv), nil, nil
	}
	// Which variants are installed is told by their binaries being there;
	// only the chosen one is then run for its version (below), which
	// saves a process per binary on every command.
	var avail []Variant
	contents := map[Variant]variantContents{}
	for _, v := range []Variant{NFT, Legacy} {
		if !binariesPresent(v) {
			continue
		}
		c, err := inspect(ctx, v, nsPath)
		if err != nil {
			if checkBinaries(v) != nil {
				continue // present but broken: as if not installed
			}
			return "", "", nil, err
		}
		avail = append(avail, v)
		contents[v] = c
	}
	v, reason, err := pickVariant(avail, contents)
	if err != nil {
		return "", "", nil, err
	}
	if err := checkBinaries(v); err != nil {
		return "", "", nil, err
	}
	return v, reason, contents, nil
}

// binariesPresent reports whether the variant's binaries are on PATH.
func binariesPresent(v Variant) bool {
	for _, base := range []string{"iptables-", "ip6tables-"} {
		for _, tool := range []string{"", "-save", "-restore"} {
			if _, err := exec.LookPath(base + string(v) + tool); err != nil {
				return false
			}
		}
	}
	return true
}

// pickVariant applies the order of chooseVariant after the explicit
// choices to what the installed variants hold.
func pickVariant(avail []Variant, contents map[Variant]variantContents) (Variant, string, error) {
	switch len(avail) {
	case 0:
		return "", "", fmt.Errorf("neither iptables-nft nor iptables-legacy is installed (install the iptables package): %w", backends.ErrUnsupported)
	case 1:
		return avail[0], fmt.Sprintf("iptables-%s is the only variant installed", avail[0]), nil
	}
	nft, legacy := contents[NFT], contents[Legacy]
	switch {
	case nft.owned && !legacy.owned:
		return NFT, "iptables-nft already holds portwarden's chains", nil
	case legacy.owned && !nft.owned:
		return Legacy, "iptables-legacy already holds portwarden's chains", nil
	case nft.rules > 0 && legacy.rules == 0:
		return NFT, fmt.Sprintf("iptables-nft holds the existing rules (%d) and iptables-legacy none", nft.rules), nil
	case legacy.rules > 0 && nft.rules == 0:
		return Legacy, fmt.Sprintf("iptables-legacy holds the existing rules (%d) and iptables-nft none", legacy.rules), nil
	}
	if v, ok := systemVariant(); ok {
		return v, fmt.Sprintf("the system's iptables command is iptables-%s", v), nil
	}
	return NFT, "iptables-nft is the default when nothing else decides", nil
}

// systemVariant reads which variant the plain `iptables` command is.
func systemVariant() (Variant, bool) {
	path, err := exec.LookPath("iptables")
	if err != nil {
		return "", false
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", false
	}
	if strings.Contains(string(out), "nf_tables") {
		return NFT, true
	}
	return Legacy, true
}
