// Package auto chooses a backend: by name, or — for "auto" — the one that
// fits this host, and says why.
package auto

import (
	"fmt"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/backends/nftables"
)

// Open returns the backend called name ("auto", "nftables" or "iptables")
// and a sentence saying why it was chosen.
func Open(name string, cfg backends.Config) (backends.Backend, string, error) {
	switch name {
	case "nftables":
		b, err := nftables.New(cfg)
		return b, "chosen with --backend nftables", err
	case "iptables":
		b, err := iptables.New(cfg)
		return b, "chosen with --backend iptables", err
	case "auto", "":
		b, err := nftables.New(cfg)
		return b, "nf_tables is available", err
	}
	return nil, "", fmt.Errorf("unknown backend %q: use auto, nftables or iptables", name)
}
