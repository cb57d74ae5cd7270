package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

// unchanged tells, without loading the policy or reading the kernel's
// objects, that the kernel already holds what the policy compiles to: the
// policy's files hash as they did when it last compiled (to a Ruleset
// with a recorded fingerprint), and the backend proves the kernel holds
// exactly that Ruleset, unwritten since. Hooks run plan and apply over and
// over on an unchanged host; with 100,000 sources this answers in a few
// milliseconds instead of loading and comparing them. Any doubt returns
// false, and the command does the full work.
func (g *globals) unchanged(cmd *cobra.Command) (*safeapply.Compiled, backends.Backend, string, bool) {
	dir, err := g.stateDir()
	if err != nil {
		return nil, nil, "", false
	}
	rec, err := dir.LastCompiled()
	if err != nil || rec == nil || !rec.Current(time.Now()) {
		return nil, nil, "", false
	}
	g.state.compiled = rec
	// The kernel first: after another program's write it is what fails,
	// and asking costs less than hashing the policy's files.
	b, reason, err := g.openBackend()
	if err != nil || b.Name() != rec.Backend {
		return nil, nil, "", false
	}
	h, ok := b.(backends.Holder)
	if !ok || !h.Holds(rec.Fingerprint) {
		return nil, nil, "", false
	}
	opts, err := g.loadOptions()
	if err != nil {
		return nil, nil, "", false
	}
	if digest, _, err := inputDigest(g.policyPath, opts, rec.Lists); err != nil || digest != rec.Digest {
		return nil, nil, "", false
	}
	if rec.Warnings != "" {
		fmt.Fprint(cmd.ErrOrStderr(), rec.Warnings)
	}
	return rec, b, reason, true
}

// inputDigest is policies.InputDigest with this binary's identity: another
// version of portwarden may compile the same files differently.
// changed is the last time an input changed.
func inputDigest(path string, opts policies.Options, lists []string) (digest string, changed time.Time, err error) {
	d, changed, err := policies.InputDigest(path, opts, lists)
	if err != nil {
		return "", changed, err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", changed, err
	}
	info, err := os.Stat(exe)
	if err != nil {
		return "", changed, err
	}
	return fmt.Sprintf("%s %s %d %d", d, exe, info.Size(), info.ModTime().UnixNano()), changed, nil
}

// changeMargin is how close to the start of a load an input may have
// changed and the load still be taken to have read it as hashed after it:
// status change times come from a coarse clock (a tick, or a file
// server's own clock).
const changeMargin = time.Second

// recordCompiled remembers what the policy compiled to, for unchanged.
// Failing costs only speed later, so errors are dropped. The files are
// hashed and the record written beside the rest of the command.
func (g *globals) recordCompiled(pol *policies.Policy, rs *rules.Ruleset, backend string) {
	opts, err := g.loadOptions()
	if err != nil {
		return
	}
	dir, err := g.stateDir()
	if err != nil {
		return
	}
	var warnings string
	if g.loaded != nil {
		warnings = g.loaded.warnings
	}
	c := safeapply.Compiled{Lists: pol.ListFiles, Fingerprint: g.fingerprint(rs), Backend: backend, Warnings: warnings, NextExpiry: rs.NextExpiry()}
	old, path, loaded := g.state.compiled, g.policyPath, g.loaded.started
	safeapply.Later(func() {
		// The files are hashed after they were loaded: one changed
		// meanwhile (a blocklist refreshed by cron) would tie its new
		// content to what the old one compiled to, and later commands
		// would take that for applied. Such a record is not written.
		digest, changed, err := inputDigest(path, opts, c.Lists)
		if err != nil || !changed.Before(loaded.Add(-changeMargin)) {
			return
		}
		c.Digest = digest
		if old != nil && reflect.DeepEqual(*old, c) {
			return // the record unchanged found says so already (after a foreign write)
		}
		dir.RecordCompiled(c)
	})
}

// writeUnchanged prints what plan and apply print when nothing changes.
func writeUnchanged(w io.Writer, backend, reason string) {
	fmt.Fprintf(w, "Backend: %s\n\n", reason)
	fmt.Fprintf(w, "No changes. The %s firewall matches the policy.\n", backend)
}
