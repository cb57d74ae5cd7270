package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newProbeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "probe",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("probe: not implemented yet")
		},
	}
}
