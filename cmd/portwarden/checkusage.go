package main

import (
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// checkUsage turns a usage error cobra found before check ran into check's
// own UNKNOWN (exit 3): Nagios reads exit 1 as WARNING, and the plugin
// contract allows no other failure. Cobra finds the command by taking an
// unknown flag to hold the next word as its value, so in
// "portwarden --bogus check" it never reaches check and fails at the root;
// check's flag error function alone cannot catch that. Any other error,
// and every error of other commands, is returned unchanged.
func checkUsage(root *cobra.Command, args []string, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err // check's own result, or another command's
	}
	cmd := namedCommand(root, args)
	if cmd == nil || cmd.Name() != "check" {
		return err
	}
	// Parse the line as check would have, to name the first thing wrong
	// with it rather than what cobra made of it ("unknown command" for
	// the word after a misread flag).
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.InitDefaultHelpFlag()
	fs.AddFlagSet(cmd.LocalFlags())
	fs.AddFlagSet(cmd.InheritedFlags())
	if perr := fs.Parse(args); perr != nil {
		err = perr
	}
	return cmd.FlagErrorFunc()(cmd, err)
}

// namedCommand is the subcommand of root that args name when every flag
// root does not know stands alone: "portwarden --bogus check" names check.
// Known flags take their value as cobra does; nil when the line names none.
func namedCommand(root *cobra.Command, args []string) *cobra.Command {
	lookup := func(name string) *pflag.Flag {
		if f := root.Flags().Lookup(name); f != nil {
			return f
		}
		return root.PersistentFlags().Lookup(name)
	}
	lookupShort := func(s string) *pflag.Flag {
		if f := root.Flags().ShorthandLookup(s); f != nil {
			return f
		}
		return root.PersistentFlags().ShorthandLookup(s)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var f *pflag.Flag
		switch {
		case a == "--":
			return nil // what follows are arguments of the root
		case strings.HasPrefix(a, "--"):
			if strings.Contains(a, "=") {
				continue
			}
			f = lookup(a[2:])
		case strings.HasPrefix(a, "-") && len(a) == 2:
			f = lookupShort(a[1:])
		case strings.HasPrefix(a, "-"):
			continue
		default:
			for _, c := range root.Commands() {
				if c.Name() == a || c.HasAlias(a) {
					return c
				}
			}
			return nil
		}
		if f != nil && f.NoOptDefVal == "" {
			i++ // its value
		}
	}
	return nil
}
