package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDestroyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("destroy: not implemented yet")
		},
	}
}
