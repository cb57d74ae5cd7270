package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
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
	var autoApprove, verifyAfter, force bool
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
			w := cmd.OutOrStdout()
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
					if pol, _, err = g.loadPolicy(cmd); err != nil {
						return err
					}
				}
			} else {
				if confirmTimeout == 0 && !verifyAfter {
					// Nothing to write, provably: see quick.go.
					if rec, b, reason, ok := g.unchanged(cmd); ok {
						if g.json {
							return printJSON(w, map[string]any{"applied": false, "backend": b.Name(), "fingerprint": rec.Fingerprint})
						}
						writeUnchanged(w, b.Name(), reason)
						return nil
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
					backends.WritePlan(w, plan, g.color(w))
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
				return g.reportApply(w, plan, false)
			}
			// An empty plan keeps what the kernel enforces already: every
			// live session has got through it.
			if !plan.Empty() {
				if err := lockoutGuard(cmd.ErrOrStderr(), plan.Desired, force); err != nil {
					return withCode(exitError1, err)
				}
			}
			if !autoApprove {
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
			if err := applyThroughSignals(ctx, cmd, dir, b, plan, opts); err != nil {
				return err
			}
			if !plan.Empty() {
				safeapply.RecordEvent("", safeapply.Event{Action: "apply", Backend: b.Name(), Policy: policyPath})
			}
			if err := g.reportApply(w, plan, !plan.Empty()); err != nil {
				return err
			}
			if confirmTimeout == 0 {
				return nil
			}
			// While it waits, Ctrl-C may end it: the watchdog rolls back.
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			return waitForConfirmation(ctx, cmd, dir, lockTimeout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&autoApprove, "auto-approve", false, "apply without asking")
	f.DurationVar(&confirmTimeout, "confirm-timeout", 0, "restore the previous state unless portwarden confirm (or yes on the terminal) comes within this time")
	f.BoolVar(&verifyAfter, "verify", false, "after applying, verify the policy's test blocks against the rules read back from the kernel; restore the previous state on failure")
	f.BoolVar(&force, "force", false, "apply even if the new rules would cut this SSH session")
	f.DurationVar(&lockTimeout, "lock-timeout", 30*time.Second, "how long to wait for another portwarden command to finish")
	return cmd
}

// applyThroughSignals runs the safe apply with SIGINT and SIGTERM caught:
// one before the kernel changes stops the apply with nothing applied (exit
// 128+signal); one after it waits until the whole transition is in, so the
// kernel never stays half-way because of it (exit 0, with a note).
func applyThroughSignals(ctx context.Context, cmd *cobra.Command, dir *safeapply.Dir, b backends.Backend, plan *backends.Plan, opts safeapply.Options) error {
	sigs := make(chan os.Signal, 2)
	// Not stopped on return: a signal after the change must not kill the
	// process while it records and reports it (its exit code would say
	// "killed" of a change that is in). The caller resets the handling
	// before it waits for a confirmation.
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	opts.Interrupted = sigs
	err := safeapply.Apply(ctx, dir, b, plan, opts)
	var ie *safeapply.InterruptedError
	var nr *safeapply.NotRecordedError
	switch {
	case err == nil:
		select {
		case sig := <-sigs:
			fmt.Fprintf(cmd.ErrOrStderr(), "Received %v while the change was being applied: it was completed first.\n", sig)
		default:
		}
		return nil
	case errors.As(err, &ie):
		code := exitSignal
		if s, ok := ie.Signal.(syscall.Signal); ok {
			code += int(s)
		}
		return withCode(code, err)
	case errors.As(err, &nr):
		return withCode(exitNotRecorded, err)
	case errors.Is(err, safeapply.ErrVerifyFailed):
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return silentExit(exitFailed)
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

// startWatchdog re-executes this binary as the rollback watchdog in a new
// session, so it outlives this process (see backends/safeapply).
func startWatchdog(dir *safeapply.Dir) (int, error) {
	exe := os.Args[0]
	if !strings.Contains(exe, "/") {
		if p, err := exec.LookPath(exe); err == nil {
			exe = p
		}
	}
	if exe == "" || !filepath.IsAbs(exe) && !strings.Contains(exe, "/") {
		var err error
		if exe, err = os.Executable(); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir.Path, "watchdog.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	c := exec.Command(exe, "__watchdog", "--state-dir", filepath.Dir(dir.Path))
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, err
	}
	pid := c.Process.Pid
	c.Process.Release()
	return pid, nil
}

// waitForConfirmation waits for `portwarden confirm` or "yes" typed here,
// and reports whether the change stayed.
func waitForConfirmation(ctx context.Context, cmd *cobra.Command, dir *safeapply.Dir, lockTimeout time.Duration) error {
	p, err := dir.GetPending()
	if err != nil || p == nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "\nThe change rolls back at %s unless confirmed: run `portwarden confirm`", p.Deadline.Local().Format("15:04:05"))
	if f, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(f) {
		fmt.Fprint(w, " or type yes here: ")
		go func() {
			line, _ := bufio.NewReader(f).ReadString('\n')
			if strings.TrimSpace(line) == "yes" {
				safeapply.Confirm(dir, lockTimeout)
			}
		}()
	} else {
		fmt.Fprintln(w, ".")
	}
	kept, err := safeapply.WaitConfirmed(ctx, dir, p.Deadline, 30*time.Second)
	if err != nil {
		return withCode(exitError1, err)
	}
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
	dir, err := g.stateDir()
	if err != nil {
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
