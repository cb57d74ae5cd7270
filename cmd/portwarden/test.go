package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("test: not implemented yet")
		},
	}
}
