package main

import (
	"fmt"

	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/backends/nftables"
	"github.com/spf13/cobra"
)

func newCompileCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "compile",
		Short: "Print the rules the backend would load (nft script or iptables-restore), deterministic",
		Example: `  portwarden --policy /etc/portwarden compile > /etc/nftables.d/portwarden.nft
  portwarden --policy /etc/portwarden --backend iptables compile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			// Rendering needs no kernel and probes nothing on the host;
			// auto renders for nftables.
			render, name := nftables.Render, "nftables"
			switch g.backend {
			case "iptables":
				render, name = iptables.Render, "iptables"
			case "nftables", "auto", "":
			default:
				return withCode(exitError1, fmt.Errorf("unknown backend %q: use nftables or iptables", g.backend))
			}
			text, err := render(rs)
			if err != nil {
				return withCode(exitError1, err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"backend": name, "rules": text, "fingerprint": rs.Fingerprint()})
			}
			fmt.Fprint(cmd.OutOrStdout(), text)
			return nil
		},
	}
}
