package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newFmtCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fmt",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("fmt: not implemented yet")
		},
	}
}
