// Command portwarden decides who may reach a server's exposed ports.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	// Maps the heap's first pages in one call, early among the package
	// initialisations (see its doc): a fresh process per command pays for
	// every fault.
	_ "github.com/portwarden/portwarden/internal/prefault"
)

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		// The garbage collector works harder near this, which keeps a
		// million sources under 1 GiB; smaller policies never reach it.
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:]))
}

// memoryLimit is the soft heap limit of one command.
const memoryLimit = 640 << 20

// defaultPath is the search path when the environment has none: Debian's
// for root, which sudo's secure_path also gives.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// run executes the CLI and returns the process exit code; tests call it
// through testscript.
func run(args []string) int {
	if os.Getenv("PATH") == "" {
		// A hook started with an empty environment (env -i) has no PATH,
		// and the iptables backend, doctor and import start the
		// firewall's own binaries by name: search where sudo and cron
		// would have them search.
		os.Setenv("PATH", defaultPath)
	}
	defer safeapply.Settle()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	err = checkUsage(root, args, err)
	asJSON := jsonRequested(root, args)
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: exitError1, err: err}
	}
	if hint := boolValueHint(root, args); hint != "" && ee.err != nil && !ee.reported && ee.code == exitError1 {
		ee.err = fmt.Errorf("%w%s", ee.err, hint)
	}
	if ee.err != nil && !ee.reported {
		fmt.Fprintf(os.Stderr, "Error: %v\n", ee.err)
	}
	// With --json a failure is JSON too, on stdout, unless the command
	// already printed its own document (a failed test or verification).
	if asJSON && ee.code == exitError1 && ee.err != nil && (!ee.reported || ee.diags != nil) {
		printJSON(os.Stdout, newErrorJSON(ee.err, ee.diags))
	}
	return ee.code
}

// jsonRequested reports whether the command line asks for --json, also
// when cobra stopped before it parsed that flag: an unknown command, or an
// unknown flag or a bad value earlier on the line. A hook that asked for
// JSON gets a JSON error whatever went wrong, wherever --json stands.
func jsonRequested(root *cobra.Command, args []string) bool {
	if f := root.PersistentFlags().Lookup("json"); f != nil && f.Changed {
		asJSON, _ := root.PersistentFlags().GetBool("json")
		return asJSON
	}
	// Parse again, leniently: the flags of the command named (or of the
	// root) take their values as cobra would, so a value that happens to
	// read "--json" is no request, and everything after "--" is an
	// argument. The copies accept any value and change nothing.
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	fs := pflag.NewFlagSet("json", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.ParseErrorsWhitelist.UnknownFlags = true
	asJSON := fs.Bool("json", false, "")
	copyFlag := func(f *pflag.Flag) {
		if fs.Lookup(f.Name) != nil || (f.Shorthand != "" && fs.ShorthandLookup(f.Shorthand) != nil) {
			return
		}
		fs.AddFlag(&pflag.Flag{Name: f.Name, Shorthand: f.Shorthand, NoOptDefVal: f.NoOptDefVal, Value: anyValue(f.Value.Type())})
	}
	for _, c := range []*cobra.Command{cmd, root} {
		c.LocalFlags().VisitAll(copyFlag)
		c.InheritedFlags().VisitAll(copyFlag)
		c.PersistentFlags().VisitAll(copyFlag)
	}
	fs.Parse(args) // errors only end the parse: what came before counts
	return *asJSON
}

// anyValue is a flag value that accepts anything, of the type it names.
type anyValue string

func (v anyValue) String() string   { return "" }
func (v anyValue) Set(string) error { return nil }
func (v anyValue) Type() string     { return string(v) }
