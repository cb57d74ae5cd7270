package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// checkUsage turns a usage error cobra found before check ran into check's
// own UNKNOWN (exit 3): Nagios reads exit 1 as WARNING, and the plugin
// contract allows no other failure. Cobra never reaches check when it
// fails at the root: it takes an unknown flag to hold the next word as its
// value ("portwarden --bogus check"), and the first bare word for the
// command, so a word before check ("portwarden --json true check": a
// boolean flag takes no separate value) is an unknown command. check's
// flag error function alone cannot catch either. Any other error, and
// every error of other commands, is returned unchanged.
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
	// the word after a misread flag, or for a word before check): a flag
	// that does not parse, else a word that is not check's name, as check
	// itself reports the arguments it takes none of.
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.InitDefaultHelpFlag()
	fs.AddFlagSet(cmd.LocalFlags())
	fs.AddFlagSet(cmd.InheritedFlags())
	if perr := fs.Parse(args); perr != nil {
		err = perr
	} else if word := strayWord(cmd, fs.Args()); word != "" {
		err = fmt.Errorf("check takes no arguments, got %q%s", word, boolValueHint(root, args))
	}
	return cmd.FlagErrorFunc()(cmd, err)
}

// strayWord is the first of the line's bare words (flags and their values
// taken out) other than the one naming cmd; "" when there is none.
func strayWord(cmd *cobra.Command, words []string) string {
	named := false
	for _, w := range words {
		if !named && (w == cmd.Name() || cmd.HasAlias(w)) {
			named = true
			continue
		}
		return w
	}
	return ""
}

// namedCommand is the subcommand of root that args name: the first bare
// word that is one of root's commands, when every flag root does not know
// stands alone ("portwarden --bogus check" names check). Known flags take
// their value as cobra does; nil when the line names none.
//
// Why scan past a bare word that is no command, where cobra stops: the
// line was written for the first command it names, and a stray word
// before it does not make it some other command's. "portwarden --json
// true check" is check's line with a misplaced value (a boolean flag
// takes its value only after "=", so "true" stands alone), and Nagios
// must get UNKNOWN for it as for any of check's mistakes. Skipping only a
// boolean word after a boolean flag would still hand cobra's exit 1 to
// Nagios for "--json yes check" or any other stray word. No other
// command's line is taken for check's: the scan still ends at the first
// command named, so "portwarden foo status check" remains status's.
func namedCommand(root *cobra.Command, args []string) *cobra.Command {
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
			f = lookupFlag(a[2:], root)
		case strings.HasPrefix(a, "-") && len(a) == 2:
			f = lookupShorthand(a[1:], root)
		case strings.HasPrefix(a, "-"):
			continue
		default:
			for _, c := range root.Commands() {
				if c.Name() == a || c.HasAlias(a) {
					return c
				}
			}
			continue // a stray word: see above
		}
		if f != nil && f.NoOptDefVal == "" {
			i++ // its value
		}
	}
	return nil
}

// boolValueHint is a hint for a line where a boolean flag is followed by
// a separate true or false ("--strict-modes false"): pflag takes a
// boolean's value only after "=", so the word stands alone, and cobra
// reads it as a command or an argument. "" when the line has none.
func boolValueHint(root *cobra.Command, args []string) string {
	cmds := []*cobra.Command{root}
	if cmd := namedCommand(root, args); cmd != nil {
		cmds = []*cobra.Command{cmd, root}
	}
	for i := 1; i < len(args); i++ {
		prev, word := args[i-1], args[i]
		if prev == "--" {
			return ""
		}
		if _, err := strconv.ParseBool(word); err != nil || !strings.HasPrefix(prev, "--") || strings.Contains(prev, "=") {
			continue
		}
		if f := lookupFlag(prev[2:], cmds...); f != nil && f.Value.Type() == "bool" {
			return fmt.Sprintf(" (a boolean flag takes its value after \"=\": write %s=%s)", prev, word)
		}
	}
	return ""
}

// lookupFlag is the flag of that long name among cmds' own and persistent
// flags, the first found; nil when none has it.
func lookupFlag(name string, cmds ...*cobra.Command) *pflag.Flag {
	for _, c := range cmds {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			if f := fs.Lookup(name); f != nil {
				return f
			}
		}
	}
	return nil
}

// lookupShorthand is lookupFlag for a one-letter shorthand.
func lookupShorthand(s string, cmds ...*cobra.Command) *pflag.Flag {
	for _, c := range cmds {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			if f := fs.ShorthandLookup(s); f != nil {
				return f
			}
		}
	}
	return nil
}
