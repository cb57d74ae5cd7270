// Package auto chooses a backend: by name, or — for "auto" — the one that
// fits this host, and says why.
//
// "auto" picks nftables when nf_tables answers a netlink request in the
// namespace and iptables-legacy holds no rules there; otherwise iptables
// (nf_tables missing, or legacy rules that an nftables table would sit
// beside unseen by the tools that wrote them). A namespace where
// portwarden's iptables chains are already installed stays with iptables,
// so switching backends is a deliberate destroy and apply. The reason is
// one sentence for plan output.
package auto

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/backends/nftables"
	pwnetns "github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/nfgen"
)

// Open returns the backend called name ("auto", "nftables" or "iptables")
// and a sentence saying why it was chosen.
func Open(name string, cfg backends.Config) (backends.Backend, string, error) {
	switch name {
	case "nftables":
		b, err := nftables.New(cfg)
		return b, "nftables chosen with --backend nftables", err
	case "iptables":
		b, err := iptables.New(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, "iptables chosen with --backend iptables" + variantReason(b), nil
	case "auto", "":
		return openAuto(context.Background(), cfg)
	}
	return nil, "", fmt.Errorf("unknown backend %q: use auto, nftables or iptables", name)
}

// variantReason adds which iptables binaries and why.
func variantReason(b backends.Backend) string {
	if r, ok := b.(interface{ Reason() string }); ok {
		return " (" + r.Reason() + ")"
	}
	return ""
}

func openAuto(ctx context.Context, cfg backends.Config) (backends.Backend, string, error) {
	nftInstalled, xtables, err := probeNFTables(cfg.NetNS)
	if err != nil {
		b, ierr := iptables.New(cfg)
		if ierr != nil {
			return nil, "", fmt.Errorf("no backend works here: nf_tables: %v; iptables: %w", err, ierr)
		}
		return b, fmt.Sprintf("iptables, because nf_tables does not answer here (%v)%s", err, variantReason(b)), nil
	}
	if nftInstalled {
		b, err := nftables.New(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, "nftables, because portwarden's nftables table is already installed here", nil
	}
	if !xtables && !legacyTables(cfg.NetNS) {
		// Nothing of iptables exists here, so there is nothing to ask the
		// iptables binaries (eight processes, a quarter of a second).
		b, err := nftables.New(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, "nftables, because nf_tables works here and iptables holds no tables", nil
	}
	if v, ok, err := iptables.Installed(ctx, cfg.NetNS); err != nil {
		return nil, "", fmt.Errorf("auto: look for portwarden's iptables chains: %w", err)
	} else if ok {
		b, err := iptables.New(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, fmt.Sprintf("iptables, because portwarden's chains are already installed with iptables-%s (to move to nftables: portwarden destroy --backend iptables, then apply)", v), nil
	}
	legacy, err := iptables.LegacyRules(ctx, cfg.NetNS)
	if err != nil {
		return nil, "", fmt.Errorf("auto: count iptables-legacy rules: %w", err)
	}
	if legacy > 0 {
		b, err := iptables.New(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, fmt.Sprintf("iptables, because iptables-legacy holds %s here and portwarden stays beside them%s", plural(legacy, "rule"), variantReason(b)), nil
	}
	b, err := nftables.New(cfg)
	if err != nil {
		if errors.Is(err, backends.ErrUnsupported) {
			ib, ierr := iptables.New(cfg)
			if ierr == nil {
				return ib, fmt.Sprintf("iptables, because the nftables backend is unavailable (%v)%s", err, variantReason(ib)), nil
			}
		}
		return nil, "", err
	}
	return b, "nftables, because nf_tables works here and iptables-legacy holds no rules", nil
}

// nftablesTable is the table the nftables backend owns (family inet).
const nftablesTable = "portwarden"

// probeNFTables asks nf_tables for its tables in the namespace at path
// (the current one when empty): the cheapest request that proves the
// subsystem works and that we may use it. It also tells whether the
// nftables backend's table is there, and whether any table of family ip
// or ip6 is (where iptables-nft keeps its chains).
func probeNFTables(path string) (installed, xtables bool, err error) {
	tables, err := nfgen.Tables(path, unix.NFPROTO_UNSPEC)
	if err != nil {
		return false, false, err
	}
	for _, t := range tables {
		if t.Name == nftablesTable && t.Family == unix.NFPROTO_INET {
			installed = true
		}
		if t.Family == unix.NFPROTO_IPV4 || t.Family == unix.NFPROTO_IPV6 {
			xtables = true
		}
	}
	return installed, xtables, nil
}

// legacyTables reports whether the namespace has any legacy iptables
// table: the kernel lists them in /proc/net/ip{,6}_tables_names, per
// namespace. When in doubt it says yes, and the binaries are asked.
func legacyTables(path string) bool {
	found := true
	err := pwnetns.DoPath(path, func() error {
		found = false
		for _, f := range []string{"ip_tables_names", "ip6_tables_names"} {
			// thread-self: this thread is the one inside the namespace.
			b, err := os.ReadFile("/proc/thread-self/net/" + f)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				found = true
			}
			if len(b) > 0 {
				found = true
			}
		}
		return nil
	})
	return err != nil || found
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Availability says whether a backend works on this host, and if not, why.
type Availability struct {
	Backend   string `json:"backend"`
	Available bool   `json:"available"`
	Detail    string `json:"detail,omitempty"`
}

// Available tells which backends work here (in the caller's network
// namespace), for `portwarden version` and doctor.
func Available() []Availability {
	nft := Availability{Backend: "nftables", Available: true, Detail: "nf_tables over netlink"}
	if _, _, err := probeNFTables(""); err != nil {
		nft.Available, nft.Detail = false, err.Error()
	}
	ipt := Availability{Backend: "iptables", Available: true}
	if b, err := iptables.New(backends.Config{}); err != nil {
		ipt.Available, ipt.Detail = false, err.Error()
	} else if r, ok := b.(interface{ Reason() string }); ok {
		ipt.Detail = r.Reason()
	}
	return []Availability{nft, ipt}
}
