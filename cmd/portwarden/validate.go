package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("validate: not implemented yet")
		},
	}
}
