package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCompileCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "compile",
		Short: "not implemented yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("compile: not implemented yet")
		},
	}
}
