// Command portwarden decides who may reach a server's exposed ports.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/portwarden/portwarden/backends/safeapply"
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

// run executes the CLI and returns the process exit code; tests call it
// through testscript.
func run(args []string) int {
	defer safeapply.Settle()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	asJSON, _ := root.PersistentFlags().GetBool("json")
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: exitError1, err: err}
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
