// Command portwarden decides who may reach a server's exposed ports.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the CLI and returns the process exit code; tests call it
// through testscript.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !ee.reported {
			fmt.Fprintf(os.Stderr, "Error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	return exitError1
}
