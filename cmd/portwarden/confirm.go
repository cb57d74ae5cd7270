package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newConfirmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("confirm: not implemented yet")
		},
	}
}
