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
			// writers are done, then (from the apply on) as applySignals
			// says. Set up beside the policy load: the first Notify waits
			// for the runtime's signal thread to start (0.5-0.7 ms here).
			// Until it is in place a signal ends apply as it would have
			// anyway, before anything changed.
			caught := make(chan *applySignals, 1)
			go func() { caught <- catchApplySignals() }()
			sigs := sync.OnceValue(func() *applySignals { return <-caught })
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
							return sigs().unchanged(w, printJSON(w, map[string]any{"applied": false, "backend": b.Name(), "fingerprint": rec.Fingerprint}))
						}
						writeUnchanged(w, b.Name(), reason)
						return sigs().unchanged(w, nil)
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
				return sigs().unchanged(w, g.reportApply(w, plan, false))
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
			// Output that broke before the change ends apply as SIGPIPE
			// did: nothing applied, exit 141.
			if sigs().take() || w.broken() {
				return interrupted(syscall.SIGPIPE)
			}
			during, err := applyThroughSignals(ctx, cmd, dir, b, plan, opts, sigs().out)
			if err != nil {
				if errors.Is(err, safeapply.ErrVerifyFailed) && g.json {
					// The documented error kind: the report is its message.
					printJSON(w, newErrorJSON(err, nil))
				}
				return err
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
				select {
				case sig := <-sigs().out:
					if sig == syscall.SIGINT || sig == syscall.SIGTERM {
						during = sig
					}
				default:
				}
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
			return waitForConfirmation(ctx, cmd, w, dir, b, lockTimeout, sigs().out, during)
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

// applySignals routes the signals that would end apply. Before the apply
// starts (take), SIGINT, SIGTERM and SIGHUP end the process as they would
// have (killed by the signal, nothing applied) once the background writers
// (safeapply.Later: the kernel cache, the compile record, the sweep) are
// done, so that none leaves a temporary file (a write of the command's own
// goroutine, such as the namespace record the first command in a namespace
// makes, can still leave one: the next command's sweep does not remove
// it, but nothing reads it either); SIGPIPE (a write to a broken
// output pipe) only marks the output broken, and apply then stops before
// the change. From take on, every signal goes to out: the apply stops on
// one that comes before the kernel changes, and one after waits until the
// whole transition is in (applyThroughSignals); a SIGINT or SIGTERM while
// the change awaits confirmation rolls it back (waitForConfirmation).
// SIGINT and SIGHUP are left alone when the process started with them
// ignored (a background job of a script, nohup).
//
// SIGPIPE is caught, never ignored: the rollback watchdog apply starts
// would inherit an ignored signal, and a caught one is reset in it.
type applySignals struct {
	in         chan os.Signal
	out        chan os.Signal
	mu         sync.Mutex
	taken      bool
	brokenPipe bool
}

func catchApplySignals() *applySignals {
	s := &applySignals{in: make(chan os.Signal, 8), out: make(chan os.Signal, 8)}
	caught := []os.Signal{syscall.SIGPIPE, syscall.SIGTERM}
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			caught = append(caught, sig)
		}
	}
	// Not stopped on return: a signal after the change must not kill the
	// process while it records and reports it (its exit code would say
	// "killed" of a change that is in).
	signal.Notify(s.in, caught...)
	go s.route()
	return s
}

func (s *applySignals) route() {
	for sig := range s.in {
		s.mu.Lock()
		switch {
		case s.taken:
			select {
			case s.out <- sig:
			default: // full: enough signals are waiting to be seen
			}
		case sig == syscall.SIGPIPE:
			s.brokenPipe = true
		default:
			// Nothing was written yet: end as the signal would have
			// once the background writers are done, mu held so that
			// the apply never starts (a second signal meanwhile waits
			// in s.in).
			safeapply.Settle()
			signal.Reset(sig)
			syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			select {}
		}
		s.mu.Unlock()
	}
}

// take hands the signals to the apply from now on, and reports whether the
// output broke before. It never returns once a signal is ending the
// process.
func (s *applySignals) take() (brokenPipe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken = true
	return s.brokenPipe
}

// unchanged ends an apply that had nothing to change: with its output
// broken, as SIGPIPE did (141, nothing applied), else with err.
func (s *applySignals) unchanged(w *outputWriter, err error) error {
	s.mu.Lock()
	broken := s.brokenPipe
	s.mu.Unlock()
	if broken || w.broken() {
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

// applyThroughSignals runs the safe apply with the signals of sigs caught:
// one before the kernel changes stops the apply with nothing applied (exit
// 128+signal); one after it waits until the whole transition is in, so the
// kernel never stays half-way because of it. It returns the SIGINT or
// SIGTERM that came during the change, if one did: a change awaiting
// confirmation is then rolled back (exit 128+signal); else it stays (exit
// 0, with a note).
func applyThroughSignals(ctx context.Context, cmd *cobra.Command, dir *safeapply.Dir, b backends.Backend, plan *backends.Plan, opts safeapply.Options, sigs <-chan os.Signal) (os.Signal, error) {
	opts.Interrupted = sigs
	err := safeapply.Apply(ctx, dir, b, plan, opts)
	var ie *safeapply.InterruptedError
	var nr *safeapply.NotRecordedError
	switch {
	case err == nil:
		var noted, declined os.Signal
		for more := true; more; {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGPIPE {
					continue // the output broke: the report says so
				}
				if noted == nil {
					noted = sig
				}
				if declined == nil && (sig == syscall.SIGINT || sig == syscall.SIGTERM) {
					declined = sig
				}
			default:
				more = false
			}
		}
		if noted != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "Received %s while the change was being applied: it was completed first.\n", safeapply.SignalName(noted))
		}
		return declined, nil
	case errors.As(err, &ie):
		code := exitSignal
		if s, ok := ie.Signal.(syscall.Signal); ok {
			code += int(s)
		}
		return nil, withCode(code, err)
	case errors.As(err, &nr):
		return nil, withCode(exitNotRecorded, err)
	case errors.Is(err, safeapply.ErrVerifyFailed):
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, &exitError{code: exitFailed, err: err, reported: true}
	}
	return nil, withCode(exitError1, explainStale(b, plan, explainKernelError(err)))
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
// and reports whether the change stayed. SIGINT or SIGTERM before it is
// confirmed (Ctrl-C at the prompt, systemd stopping the unit, a hook's
// timeout; declined when one came during the change) is a no: the change
// is rolled back at once and apply exits 128+signal, the kernel as before,
// instead of ending while the kernel holds a change that the watchdog may
// or may not undo later. SIGHUP (the SSH session dropped) is not: the
// change stays pending, the watchdog rolls it back at the deadline unless
// `portwarden confirm` comes from another session first, and apply waits
// on and exits with what happened.
func waitForConfirmation(ctx context.Context, cmd *cobra.Command, w io.Writer, dir *safeapply.Dir, b backends.Backend, lockTimeout time.Duration, sigs <-chan os.Signal, declined os.Signal) error {
	p, err := dir.GetPending()
	if err != nil {
		return withCode(exitError1, err)
	}
	if p == nil { // decided already
		return confirmationOutcome(w, dir)
	}
	// What the command left to the background is written before it waits,
	// which a SIGKILL may end.
	safeapply.Settle()
	if declined == nil {
		declined, err = waitOrDecline(ctx, cmd, w, dir, p, lockTimeout, sigs)
	}
	if declined == nil {
		return err
	}
	name := safeapply.SignalName(declined)
	fmt.Fprintf(cmd.ErrOrStderr(), "\nReceived %s before the change was confirmed: rolling it back now.\n", name)
	by := fmt.Sprintf("%s (portwarden apply got %s before the change was confirmed)", safeapply.Who(), name)
	undone, err := safeapply.RollbackOwn(context.WithoutCancel(ctx), dir, lockTimeout, sameBackend(b), p.Deadline, by)
	if err != nil {
		return withCode(exitError1, explainKernelError(err))
	}
	if undone == nil { // decided meanwhile: confirmed, or rolled back by the watchdog
		return confirmationOutcome(w, dir)
	}
	return withCode(exitSignal+int(declined.(syscall.Signal)),
		fmt.Errorf("interrupted by %s before the change was confirmed: it was rolled back, the previous rules are back", name))
}

// waitOrDecline waits for the change p to be confirmed or rolled back,
// and returns the outcome's error, or the SIGINT or SIGTERM that came
// first.
func waitOrDecline(ctx context.Context, cmd *cobra.Command, w io.Writer, dir *safeapply.Dir, p *safeapply.Pending, lockTimeout time.Duration, sigs <-chan os.Signal) (os.Signal, error) {
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
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	declined := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case sig := <-sigs:
				// SIGPIPE: the output went away, not the answer; SIGHUP:
				// the session dropped, the watchdog decides.
				if sig == syscall.SIGINT || sig == syscall.SIGTERM {
					declined <- sig
					cancel()
					return
				}
			case <-waitCtx.Done():
				return
			}
		}
	}()
	kept, err := safeapply.WaitConfirmed(waitCtx, dir, p.Deadline, 30*time.Second)
	if errors.Is(err, context.Canceled) {
		return <-declined, nil
	}
	if err != nil {
		return nil, withCode(exitError1, err)
	}
	if !kept {
		fmt.Fprintln(w, "\nNot confirmed in time: the previous state was restored.")
		return nil, silentExit(exitError1)
	}
	fmt.Fprintln(w, "\nConfirmed: the change stays.")
	return nil, nil
}

// confirmationOutcome reports a change that is no longer pending: confirmed
// (exit 0) or rolled back by the watchdog (exit 1).
func confirmationOutcome(w io.Writer, dir *safeapply.Dir) error {
	if a, _ := dir.LastApplied(); a != nil && a.RolledBack {
		fmt.Fprintln(w, "\nNot confirmed in time: the previous state was restored.")
		return silentExit(exitError1)
	}
	fmt.Fprintln(w, "\nConfirmed: the change stays.")
	return nil
}

// sameBackend opens the backend a pending change was applied with: b, the
// one this apply used.
func sameBackend(b backends.Backend) func(string) (backends.Backend, error) {
	return func(name string) (backends.Backend, error) {
		if name == b.Name() {
			return b, nil
		}
		return nil, fmt.Errorf("the change to roll back was applied with the %s backend, not %s", name, b.Name())
	}
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
