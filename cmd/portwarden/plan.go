package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPlanCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("plan: not implemented yet")
		},
	}
}
