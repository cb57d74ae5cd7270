package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	var autoApprove, verifyAfter, force, noWait bool
	var confirmTimeout, lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE] [--auto-approve] [--confirm-timeout D] [--verify] [--force]",
		Short: "Make the kernel match the policy (or a saved plan) in one atomic step",
		Example: `  portwarden --policy /etc/portwarden apply                  # show the plan, ask, apply
  portwarden --policy /etc/portwarden apply --auto-approve   # from a hook
  portwarden apply nscp.plan                                 # the saved plan you reviewed
  portwarden --policy /etc/portwarden apply --confirm-timeout 2m   # rolls back unless confirmed`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noWait && confirmTimeout == 0 {
				return withCode(exitError1, errors.New("--no-wait goes with --confirm-timeout: without a deadline apply does not wait"))
			}
			// Caught from the start: a broken output pipe (`apply |
			// head`) makes writes fail instead of killing the process, and
			// SIGINT, SIGTERM and SIGHUP end it only once the background
			// writers are done, then (from the apply on) as
			// safeapply.Signals says. Set up beside the policy load: the
			// first Notify waits for the runtime's signal thread to start
			// (0.5-0.7 ms here). Until it is in place a signal ends apply
			// as it would have anyway, before anything changed.
			caught := make(chan *safeapply.Signals, 1)
			go func() { caught <- safeapply.CatchSignals() }()
			sigs := sync.OnceValue(func() *safeapply.Signals { return <-caught })
			stdout := cmd.OutOrStdout()
			w := &outputWriter{w: stdout}
			var plan *backends.Plan
			var pol *policies.Policy
			policyPath, _ := filepath.Abs(g.policyPath)
			var err error
			if len(args) == 1 {
				// A saved plan was reviewed already: it applies as it is, and
				// only if the kernel is still what it was planned against.
				saved, err := safeapply.LoadPlan(args[0])
				if err != nil {
					if looksLikePolicy(args[0]) {
						err = fmt.Errorf("%s looks like a policy, not a saved plan: apply a policy with portwarden --policy %s apply", args[0], args[0])
					}
					return withCode(exitError1, err)
				}
				plan = saved.Plan
				policyPath = saved.PolicyPath
				g.backend = plan.Backend
				autoApprove = true
				if verifyAfter {
					// The tests to verify are the policy's the plan was
					// made from, unless --policy names another.
					if !cmd.Flags().Changed("policy") {
						g.policyPath = saved.PolicyPath
					}
					if pol, _, err = g.loadPolicy(cmd); err != nil {
						return err
					}
				}
			} else {
				if confirmTimeout == 0 && !verifyAfter {
					// Nothing to write, provably: see quick.go.
					if rec, b, reason, ok := g.unchanged(cmd); ok {
						if g.json {
							return endUnchanged(sigs(), w, printJSON(w, map[string]any{"applied": false, "backend": b.Name(), "fingerprint": rec.Fingerprint}))
						}
						writeUnchanged(w, b.Name(), reason)
						return endUnchanged(sigs(), w, nil)
					}
				}
				var reason string
				if plan, reason, pol, err = g.makePlan(cmd); err != nil {
					return err
				}
				if !verifyAfter {
					pol = nil
					g.releasePolicy()
				}
				if !g.json {
					fmt.Fprintf(w, "Backend: %s\n\n", reason)
					backends.WritePlan(w, plan, g.color(stdout))
				}
			}
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			// An empty plan writes nothing, so it needs no state directory,
			// unless an earlier apply was cut short and must be recorded.
			dir, dirErr := g.stateDir()
			var unfinished *safeapply.Applying
			if dirErr == nil {
				if unfinished, err = dir.Unfinished(); err != nil {
					return withCode(exitError1, err)
				}
			}
			if plan.Empty() && confirmTimeout == 0 && unfinished == nil {
				// Nothing to write: the stale check still runs, the kernel
				// sees no write.
				if err := b.Apply(context.Background(), plan); err != nil {
					return withCode(exitError1, explainStale(b, plan, explainKernelError(err)))
				}
				return endUnchanged(sigs(), w, g.reportApply(w, plan, false))
			}
			// An empty plan keeps what the kernel enforces already: every
			// live session has got through it. The guard runs with the
			// lock held, right before the change (Options.Guard): the
			// answer and the lock may come long after the plan, while
			// sessions come and go and grants run out. Asked first, it
			// also refuses before the question.
			guardWarnings := cmd.ErrOrStderr()
			if !autoApprove {
				if !plan.Empty() {
					if err := lockoutGuard(guardWarnings, plan.Desired, force); err != nil {
						return withCode(exitError1, err)
					}
					guardWarnings = io.Discard
				}
				if err := confirm(cmd.InOrStdin(), w, "apply"); err != nil {
					return withCode(exitError1, err)
				}
			}
			if dirErr != nil {
				return withCode(exitError1, fmt.Errorf("%w: %w", safeapply.ErrNotPrepared, dirErr))
			}
			opts := safeapply.Options{
				LockTimeout: lockTimeout, Command: "portwarden apply", Policy: policyPath,
				ConfirmTimeout: confirmTimeout,
				StartWatchdog:  func() (int, error) { return startWatchdog(dir) },
			}
			if !plan.Empty() {
				opts.Guard = func() error { return lockoutGuard(guardWarnings, plan.Desired, force) }
			}
			if verifyAfter {
				opts.Verify = func(ctx context.Context, st *backends.State) (bool, string, error) {
					rep, err := verify.Sandbox(ctx, verify.SandboxConfig{Policy: pol, Ruleset: st.Ruleset, Backend: b.Name()})
					if err != nil {
						return false, "", err
					}
					var sb strings.Builder
					rep.WriteText(&sb, false)
					return !rep.Failed(), sb.String(), nil
				}
			}
			ctx := context.Background()
			// Output that broke before the change ends apply as SIGPIPE
			// did: nothing applied, exit 141.
			if sigs().Take() || w.broken() {
				return interrupted(syscall.SIGPIPE)
			}
			noted, during, err := safeapply.ApplyThroughSignals(ctx, dir, b, plan, opts, sigs().Received())
			if err != nil {
				err = applyExit(cmd.ErrOrStderr(), b, plan, err)
				if errors.Is(err, safeapply.ErrVerifyFailed) && g.json {
					// The documented error kind: the report is its message.
					printJSON(w, newErrorJSON(err, nil))
				}
				return err
			}
			if noted != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "Received %s while the change was being applied: it was completed first.\n", safeapply.SignalName(noted))
			}
			// From here the kernel holds the change: neither a signal nor
			// a broken output pipe changes what the exit code says of it,
			// and a report that could not be written is said on stderr.
			defer func() {
				if w.err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Warning: the report on standard output was cut short (%v); the exit code says how apply ended.\n", w.err)
				}
			}()
			if !plan.Empty() {
				safeapply.RecordEvent("", safeapply.Event{Action: "apply", Backend: b.Name(), Policy: policyPath})
			}
			g.reportApply(w, plan, !plan.Empty()) // only a write can fail: said above
			if confirmTimeout == 0 {
				return nil
			}
			if noWait && during == nil {
				// One last look: a SIGINT or SIGTERM since the change went
				// in (while it was reported) is a no as well.
				during = safeapply.PollDecline(sigs().Received())
			}
			if noWait && during == nil {
				// A hook's way to leave the change pending: the watchdog
				// keeps the deadline, a later `portwarden confirm` keeps
				// the change. (A signal is a no; see waitForConfirmation.)
				if p, err := dir.GetPending(); err == nil && p != nil && !g.json {
					fmt.Fprintf(w, "\nThe change rolls back at %s unless `portwarden confirm` comes first.\n", p.Deadline.Local().Format(time.RFC3339))
				}
				return nil
			}
			return waitForConfirmation(ctx, cmd, w, dir, b, lockTimeout, sigs().Received(), during)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&autoApprove, "auto-approve", false, "apply without asking")
	f.DurationVar(&confirmTimeout, "confirm-timeout", 0, "restore the previous state unless portwarden confirm (or yes on the terminal) comes within this time")
	f.BoolVar(&verifyAfter, "verify", false, "after applying, verify the policy's test blocks against the rules read back from the kernel; restore the previous state on failure")
	f.BoolVar(&force, "force", false, "apply even if the new rules would cut this SSH session")
	f.BoolVar(&noWait, "no-wait", false, "with --confirm-timeout: exit once the change is in, leaving it to portwarden confirm or the rollback at the deadline")
	f.DurationVar(&lockTimeout, "lock-timeout", 30*time.Second, "how long to wait for another portwarden command to finish")
	return cmd
}

// endUnchanged ends an apply that had nothing to change: with its output
// broken, as SIGPIPE did (141, nothing applied), else with err.
func endUnchanged(sigs *safeapply.Signals, w *outputWriter, err error) error {
	if sigs.BrokenPipe() || w.broken() {
		return interrupted(syscall.SIGPIPE)
	}
	return err
}

// interrupted is the error of an apply that sig stopped before the kernel
// changed: exit 128+sig.
func interrupted(sig syscall.Signal) error {
	return withCode(exitSignal+int(sig), &safeapply.InterruptedError{Signal: sig})
}

// outputWriter passes writes on and keeps the first error: with SIGPIPE
// caught, a write to a broken pipe fails (EPIPE) instead of killing the
// process, and apply decides what that means. After an error it writes
// nothing more.
type outputWriter struct {
	w   io.Writer
	err error
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// broken reports whether the reader of the output went away.
func (o *outputWriter) broken() bool { return errors.Is(o.err, syscall.EPIPE) }

// applyExit maps what safeapply.ApplyThroughSignals returned to apply's
// exit: 128+signal for a signal before the kernel changed (nothing
// applied), exitNotRecorded for a change that is in but not recorded,
// exitFailed for a failed --verify (its report said on stderr).
func applyExit(stderr io.Writer, b backends.Backend, plan *backends.Plan, err error) error {
	var ie *safeapply.InterruptedError
	var nr *safeapply.NotRecordedError
	switch {
	case errors.As(err, &ie):
		code := exitSignal
		if s, ok := ie.Signal.(syscall.Signal); ok {
			code += int(s)
		}
		return withCode(code, err)
	case errors.As(err, &nr):
		return withCode(exitNotRecorded, err)
	case errors.Is(err, safeapply.ErrVerifyFailed):
		fmt.Fprintln(stderr, err)
		return &exitError{code: exitFailed, err: err, reported: true}
	}
	return withCode(exitError1, explainStale(b, plan, explainKernelError(err)))
}

// lockoutGuard refuses rules that would cut a live SSH session to this
// host, as the kernel's socket table shows them (SSH_CONNECTION is one more
// session, not the only one: sudo and Ansible's become drop it), unless
// forced.
func lockoutGuard(stderr io.Writer, rs *rules.Ruleset, force bool) error {
	if force {
		return nil
	}
	warnings, err := safeapply.CheckLockout(rs, os.Environ())
	for _, w := range warnings {
		fmt.Fprintf(stderr, "Warning: %s\n", w)
	}
	return err
}

// waitForConfirmation waits for `portwarden confirm` or "yes" typed here,
// and reports whether the change stayed. SIGINT or SIGTERM before it is
// confirmed (declined when one came during the change) is a no: the change
// is rolled back at once and apply exits 128+signal, the kernel as before.
// SIGHUP is not: apply waits on and exits with what happened (see
// safeapply.WaitOrDecline).
func waitForConfirmation(ctx context.Context, cmd *cobra.Command, w io.Writer, dir *safeapply.Dir, b backends.Backend, lockTimeout time.Duration, sigs <-chan os.Signal, declined os.Signal) error {
	p, err := dir.GetPending()
	if err != nil {
		return withCode(exitError1, err)
	}
	if p == nil { // decided already
		return confirmationOutcome(w, dir.Kept())
	}
	// What the command left to the background is written before it waits,
	// which a SIGKILL may end.
	safeapply.Settle()
	if declined == nil {
		fmt.Fprintf(w, "\nThe change rolls back at %s unless confirmed: run `portwarden confirm`", p.Deadline.Local().Format("15:04:05"))
		var answer io.Reader
		if f, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(f) {
			fmt.Fprint(w, " or type yes here: ")
			answer = f
		} else {
			fmt.Fprintln(w, ".")
		}
		var kept bool
		if kept, declined, err = safeapply.WaitOrDecline(ctx, dir, p, lockTimeout, sigs, answer); err != nil {
			return withCode(exitError1, err)
		}
		if declined == nil {
			return confirmationOutcome(w, kept)
		}
	}
	name := safeapply.SignalName(declined)
	fmt.Fprintf(cmd.ErrOrStderr(), "\nReceived %s before the change was confirmed: rolling it back now.\n", name)
	undone, err := safeapply.RollbackDeclined(ctx, dir, b, p, lockTimeout, declined)
	if err != nil {
		return withCode(exitError1, explainKernelError(err))
	}
	if undone == nil { // decided meanwhile: confirmed, or rolled back by the watchdog
		return confirmationOutcome(w, dir.Kept())
	}
	return withCode(exitSignal+int(declined.(syscall.Signal)),
		fmt.Errorf("interrupted by %s before the change was confirmed: it was rolled back, the previous rules are back", name))
}

// confirmationOutcome reports a change that is no longer pending: kept
// (confirmed, exit 0) or rolled back by the watchdog (exit 1).
func confirmationOutcome(w io.Writer, kept bool) error {
	if !kept {
		fmt.Fprintln(w, "\nNot confirmed in time: the previous state was restored.")
		return silentExit(exitError1)
	}
	fmt.Fprintln(w, "\nConfirmed: the change stays.")
	return nil
}

func (g *globals) reportApply(w io.Writer, plan *backends.Plan, changed bool) error {
	if g.json {
		return printJSON(w, map[string]any{"applied": changed, "backend": plan.Backend, "fingerprint": g.fingerprint(plan.Desired)})
	}
	if changed {
		c, u, r := plan.Diff.Summary()
		fmt.Fprintf(w, "\nApply complete: %d added, %d changed, %d destroyed.\n", c, u, r)
	}
	return nil
}

// explainStale tells a stale plan whose result the kernel already holds
// ("already applied") from one overtaken by another change.
func explainStale(b backends.Backend, plan *backends.Plan, err error) error {
	if !errors.Is(err, backends.ErrStalePlan) {
		return err
	}
	st, cerr := b.Current(context.Background())
	if cerr == nil && len(st.Drift) == 0 && st.Ruleset.Fingerprint() == plan.Desired.Fingerprint() {
		return fmt.Errorf("%w (it was already applied: the firewall already holds its result, nothing to do)", backends.ErrStalePlan)
	}
	return err
}

// looksLikePolicy reports whether a file given where a saved plan is
// expected is a policy file.
func looksLikePolicy(path string) bool {
	if strings.HasSuffix(path, ".hcl") || strings.HasSuffix(path, ".hcl.json") {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// errNoTerminal: apply and destroy ask a person, and refuse without one.
var errNoTerminal = errors.New("no terminal to confirm on: pass --auto-approve, or save a plan with `portwarden plan --out FILE` and apply that file")

// errNoTerminalDestroy is errNoTerminal for destroy, which has no plan.
var errNoTerminalDestroy = errors.New("no terminal to confirm on: pass --auto-approve to destroy without asking (portwarden status shows what would go)")

// confirm asks on a terminal and accepts only "yes".
func confirm(in io.Reader, w io.Writer, what string) error {
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		if what == "destroy" {
			return errNoTerminalDestroy
		}
		return errNoTerminal
	}
	fmt.Fprintf(w, "\nDo you want to %s these changes? Only 'yes' will be accepted: ", what)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("%s cancelled: nothing was changed", what)
	}
	return nil
}

// unfinishedApply reports an apply that was cut short (killed, or the
// machine stopped) before it finished, for plan and status; nil when there
// is none or the state directory cannot be read.
func (g *globals) unfinishedApply(b backends.Backend) *safeapply.Interruption {
	// Only a directory that exists can record an apply in flight, and
	// status, which only reads, must not make one just to look.
	dir, err := g.existingStateDir()
	if err != nil || dir == nil {
		return nil
	}
	if a, err := dir.Unfinished(); err != nil || a == nil {
		return nil
	}
	if b == nil {
		if b, _, err = g.openBackend(); err != nil {
			return nil
		}
	}
	in, err := safeapply.CheckUnfinished(context.Background(), dir, b)
	if err != nil {
		return nil
	}
	return in
}
