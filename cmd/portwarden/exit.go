package main

// Exit codes of the CLI contract (DESIGN.md).
const (
	exitOK      = 0
	exitError1  = 1 // an error: invalid policy, kernel refused, bad flags
	exitChanges = 2 // plan --detailed-exitcode: there are changes
	exitFailed  = 3 // a check failed: test, verify, probe --expect, fmt --check, doctor
	// exitNotRecorded: apply changed the kernel as planned (the firewall
	// matches the new policy) but could not record it afterwards.
	exitNotRecorded = 4
	// exitSignal + the signal number (130 SIGINT, 143 SIGTERM): apply was
	// interrupted before the kernel changed; nothing was applied.
	exitSignal = 128
)

// exitError carries an exit code out of a cobra RunE. reported is true when
// the command already printed everything the user needs (diagnostics, a
// failing test report), so main prints nothing more.
type exitError struct {
	code     int
	err      error
	reported bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return "exit status"
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode returns err carrying the exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// silentExit returns an error that only sets the exit code: the command has
// already told the user what happened.
func silentExit(code int) error { return &exitError{code: code, reported: true} }
