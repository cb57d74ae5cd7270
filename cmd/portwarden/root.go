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

	loaded *loaded // loadPolicy and openBackend, once per process (common.go)
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
