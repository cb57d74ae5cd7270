package main

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
)

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
	// diags are an invalid policy's diagnostics, for the JSON error.
	diags hcl.Diagnostics
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

// errInvalidPolicy: the policy has errors, already printed as diagnostics.
var errInvalidPolicy = errors.New("the policy is invalid")

// invalidPolicy is loadPolicy's error: exit 1, diagnostics printed.
func invalidPolicy(diags hcl.Diagnostics) error {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return &exitError{code: exitError1, err: fmt.Errorf("%w: %d error(s), see the diagnostics", errInvalidPolicy, n), reported: true, diags: diags}
}

// Error kinds of the JSON error document: what a hook branches on without
// parsing messages (docs/cli.md).
const (
	kindInvalidPolicy = "invalid_policy"
	kindNeedsRoot     = "needs_root"
	kindLocked        = "locked"
	kindStalePlan     = "stale_plan"
	kindTamperedPlan  = "tampered_plan"
	kindLockout       = "lockout"
	kindPending       = "pending_confirmation"
	kindVerifyFailed  = "verify_failed"
	kindError         = "error"
)

func errorKind(err error) string {
	switch {
	case errors.Is(err, errInvalidPolicy):
		return kindInvalidPolicy
	case errors.Is(err, backends.ErrPermission):
		return kindNeedsRoot
	case errors.Is(err, safeapply.ErrLocked):
		return kindLocked
	case errors.Is(err, backends.ErrStalePlan):
		return kindStalePlan
	case errors.Is(err, safeapply.ErrPlanTampered):
		return kindTamperedPlan
	case errors.Is(err, safeapply.ErrLockout):
		return kindLockout
	case errors.Is(err, safeapply.ErrPending):
		return kindPending
	case errors.Is(err, safeapply.ErrVerifyFailed):
		return kindVerifyFailed
	}
	return kindError
}

// errorJSON is what --json prints on stdout when a command fails.
type errorJSON struct {
	FormatVersion int                       `json:"format_version"`
	Valid         *bool                     `json:"valid,omitempty"` // set for an invalid policy
	Error         errorBody                 `json:"error"`
	Diagnostics   []policies.JSONDiagnostic `json:"diagnostics"`
}

type errorBody struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func newErrorJSON(err error, diags hcl.Diagnostics) errorJSON {
	e := errorJSON{FormatVersion: formatVersion, Error: errorBody{Kind: errorKind(err), Message: err.Error()},
		Diagnostics: policies.DiagnosticsJSON(diags)}
	if e.Error.Kind == kindInvalidPolicy {
		valid := false
		e.Valid = &valid
	}
	return e
}
