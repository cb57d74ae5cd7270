package main

import (
	"github.com/spf13/cobra"
)

// globals are the flags every command shares (DESIGN.md, the CLI contract).
type globals struct {
	policyPath string
	backend    string
	vars       []string
	varFiles   []string
	json       bool
	noColor    bool
	// strictModes refuses (false: warns about) policy files others could
	// write, when running as root.
	strictModes bool
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "portwarden",
		Short:         "Decide who may reach this server's exposed ports",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&g.policyPath, "policy", ".", "policy file or directory")
	f.StringVar(&g.backend, "backend", "auto", "firewall backend: auto, nftables or iptables")
	f.StringArrayVar(&g.vars, "var", nil, "set a variable: name=value (repeatable)")
	f.StringArrayVar(&g.varFiles, "var-file", nil, "load variables from a .hcl or .hcl.json file (repeatable)")
	f.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	f.BoolVar(&g.noColor, "no-color", false, "disable colour (also NO_COLOR)")
	f.BoolVar(&g.strictModes, "strict-modes", true, "as root, refuse policy and variables files (and their directories) that a user other than root or the owner can write; false only warns")

	root.AddCommand(
		newValidateCmd(g),
		newFmtCmd(g),
		newCompileCmd(g),
		newTestCmd(g),
		newExplainCmd(g),
		newPlanCmd(g),
		newApplyCmd(g),
		newConfirmCmd(g),
		newDestroyCmd(g),
		newVerifyCmd(g),
		newProbeCmd(g),
		newStatusCmd(g),
		newDoctorCmd(g),
		newWatchdogCmd(),
	)
	return root
}
