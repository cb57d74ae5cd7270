package main

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
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

	// warnings are the last loaded policy's warnings, for JSON outputs.
	warnings hcl.Diagnostics
	loaded   *loaded // loadPolicy and openBackend, once per process (common.go)
	state    *state  // the state directory and its journal, once per process (common.go)
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
		Version:       version,
	}
	v := versionInfo()
	root.SetVersionTemplate(fmt.Sprintf("portwarden {{.Version}} (commit %s, %s)\n", v.Commit, v.GoVersion))
	f := root.PersistentFlags()
	f.StringVar(&g.policyPath, "policy", ".", "policy file or directory")
	f.StringVar(&g.backend, "backend", "auto", "firewall backend: auto, nftables or iptables")
	f.StringArrayVar(&g.vars, "var", nil, "set a variable: name=value (repeatable)")
	f.StringArrayVar(&g.varFiles, "var-file", nil, "load variables from a .hcl or .hcl.json file (repeatable)")
	f.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	f.BoolVar(&g.noColor, "no-color", false, "disable colour (also NO_COLOR)")
	f.BoolVar(&g.strictModes, "strict-modes", true, "as root, refuse policy and variables files (and their directories) that a user other than root or the owner can write; false only warns")

	// Help lists the commands in the order of the work: write and check a
	// policy, plan and apply it, watch and prove it, adopt, remove.
	cobra.EnableCommandSorting = false
	root.AddCommand(
		newValidateCmd(g),
		newFmtCmd(g),
		newTestCmd(g),
		newExplainCmd(g),
		newCompileCmd(g),
		newPlanCmd(g),
		newShowCmd(g),
		newApplyCmd(g),
		newConfirmCmd(g),
		newRollbackCmd(g),
		newStatusCmd(g),
		newUsageCmd(g),
		newMetricsCmd(g),
		newCheckCmd(g),
		newVerifyCmd(g),
		newProbeCmd(g),
		newDoctorCmd(g),
		newImportCmd(g),
		newDestroyCmd(g),
		newVersionCmd(g),
		newWatchdogCmd(),
	)
	return root
}
