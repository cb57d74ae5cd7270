package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "apply",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("apply: not implemented yet")
		},
	}
}
