package safeapply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// Options shape one safe apply.
type Options struct {
	LockTimeout time.Duration
	Command     string // for the lock holder's description
	// ConfirmTimeout, when set, makes the change provisional: StartWatchdog
	// is called before anything is written and must start a process that
	// calls Watch.
	ConfirmTimeout time.Duration
	StartWatchdog  func() (pid int, err error)
	// Verify, when set, checks the state read back after applying; a
	// failure restores the previous state.
	Verify func(ctx context.Context, st *backends.State) (ok bool, report string, err error)
	Policy string // recorded in the journal
	// Guard, when set, is asked with the lock held, right before anything
	// is written, whether the change may go in (the lockout guard: the
	// sessions and grants as they are then, after any wait for the lock or
	// for an answer); an error stops the apply with nothing applied.
	Guard func() error
	// Interrupted, when set, delivers a signal that arrived while the
	// apply was being prepared: Apply then stops before the kernel changes
	// and returns an *InterruptedError. A signal after that point is for
	// the caller to hold until Apply returns.
	Interrupted <-chan os.Signal
}

var (
	// ErrPending: a change awaits confirmation.
	ErrPending = errors.New("a change awaits confirmation")
	// ErrVerifyFailed: verification after applying failed; the previous
	// state was restored.
	ErrVerifyFailed = errors.New("verification after applying failed: the previous state was restored")
)

// ErrNotPrepared: what the apply must record could not be written, so
// nothing was applied.
var ErrNotPrepared = errors.New("nothing was applied: the state could not be prepared")

// NotRecordedError: the kernel changed as planned, but recording it
// failed afterwards. The firewall matches the new policy.
type NotRecordedError struct {
	What string
	Err  error
}

func (e *NotRecordedError) Error() string {
	return fmt.Sprintf("the firewall now matches the new policy, but %s was not recorded: %v", e.What, e.Err)
}

func (e *NotRecordedError) Unwrap() error { return e.Err }

// InterruptedError: a signal arrived before the kernel changed; nothing
// was applied.
type InterruptedError struct{ Signal os.Signal }

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted by %s before the firewall changed: nothing was applied", SignalName(e.Signal))
}

// SignalName names a signal as people write it: SIGTERM, not
// "terminated".
func SignalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}

// Apply applies plan with the lock held, a watchdog armed when asked, and
// verification when asked.
func Apply(ctx context.Context, d *Dir, b backends.Backend, plan *backends.Plan, opts Options) error {
	lock, sig, err := d.acquireUnless(opts.LockTimeout, opts.Command, opts.Interrupted)
	if sig != nil {
		return &InterruptedError{Signal: sig}
	}
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotPrepared, err)
	}
	defer lock.Unlock()
	if p, err := d.GetPending(); err != nil {
		return err
	} else if p != nil {
		return fmt.Errorf("%w (applied by %s; it rolls back at %s): run `portwarden confirm` or wait for the rollback, then apply again",
			ErrPending, p.By, p.Deadline.Format(time.RFC3339))
	}
	if opts.Guard != nil {
		if err := opts.Guard(); err != nil {
			return err
		}
	}
	var previous *rules.Ruleset
	if plan.Current != nil && plan.Current.Installed {
		previous = plan.Current.Ruleset
	}
	if opts.ConfirmTimeout > 0 {
		pend := Pending{Backend: b.Name(), Previous: previous, Deadline: time.Now().Add(opts.ConfirmTimeout).UTC(), By: Who()}
		if err := d.SetPending(pend); err != nil {
			return fmt.Errorf("%w: record the change awaiting confirmation: %w", ErrNotPrepared, err)
		}
		pid, err := opts.StartWatchdog()
		if err != nil {
			d.ClearPending()
			return fmt.Errorf("start the rollback watchdog (nothing was applied): %w", err)
		}
		pend.WatchdogPID = pid
		if err := d.SetPending(pend); err != nil {
			return err
		}
	}
	// Everything the apply records is written now (the journal's space
	// reserved, so that even a file system that reports a full disk only
	// when it writes back says so here), before the kernel changes: a
	// full, read-only or vanished state directory stops the apply here,
	// with nothing applied. After the kernel changed, only renames remain.
	desired := plan.Desired.Fingerprint()
	rec, err := d.stageApplied(Applied{Fingerprint: desired, Backend: b.Name(), When: time.Now().UTC(), By: Who(), Policy: opts.Policy})
	if err != nil {
		d.disarm()
		return fmt.Errorf("%w: %w", ErrNotPrepared, err)
	}
	defer rec.discard()
	if err := d.beginApplying(newApplying(b, previous, plan.Desired, desired)); err != nil {
		d.disarm()
		return fmt.Errorf("%w: %w", ErrNotPrepared, err)
	}
	if opts.Interrupted != nil {
		select {
		case sig := <-opts.Interrupted:
			d.endApplying()
			d.disarm()
			return &InterruptedError{Signal: sig}
		default:
		}
	}
	// From here on the kernel changes: an interrupting signal waits until
	// the whole transition is in (the caller keeps it from killing us).
	if err := b.Apply(context.WithoutCancel(ctx), plan); err != nil {
		if errors.Is(err, backends.ErrStalePlan) {
			d.endApplying()
		}
		d.disarm()
		return err
	}
	// With --verify the new rules are recorded only once they pass: until
	// then the journal keeps the previous apply's record and the record of
	// the apply in flight stays, so a verification cut short (killed) is an
	// unfinished apply for plan and status, and a failed one leaves the
	// journal as it was before.
	if opts.Verify != nil {
		if err := verifyOrRestore(ctx, d, b, previous, opts); err != nil {
			return err
		}
	}
	if err := rec.commit(); err != nil {
		return &NotRecordedError{What: "the journal of this apply (" + d.file("applied.json") + ")", Err: err}
	}
	if err := d.endApplying(); err != nil {
		return &NotRecordedError{What: "the end of this apply (" + d.file(applyingFile) + " is left, and plan and status say the apply did not finish)", Err: err}
	}
	return nil
}

// verifyOrRestore verifies the rules the kernel holds after the change; on
// a failure (or when they cannot be read back or verified) it restores
// previous, forgets a pending change, ends the record of the apply in
// flight without recording the new rules, adds the rollback to the history
// and returns ErrVerifyFailed. When restoring fails too, the record of the
// apply in flight stays: plan and status then say what the kernel holds.
func verifyOrRestore(ctx context.Context, d *Dir, b backends.Backend, previous *rules.Ruleset, opts Options) error {
	var ok bool
	var report string
	st, err := b.Current(ctx)
	if err != nil {
		err = fmt.Errorf("read the rules back: %w", err)
	} else {
		ok, report, err = opts.Verify(ctx, st)
	}
	if err == nil && ok {
		return nil
	}
	if rerr := Restore(context.WithoutCancel(ctx), b, previous); rerr != nil {
		return fmt.Errorf("verification failed and restoring the previous state failed too: %w", rerr)
	}
	d.disarm()
	d.endApplying() // left behind, it says the kernel holds the previous rules whole
	RecordEvent(filepath.Dir(d.Path), Event{Action: "rollback", Backend: b.Name(), Policy: opts.Policy,
		Reason: "apply --verify: the verification failed, the previous rules were restored"})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVerifyFailed, err)
	}
	return fmt.Errorf("%w\n%s", ErrVerifyFailed, report)
}

// disarm forgets a pending change and stops its watchdog.
func (d *Dir) disarm() {
	if p, _ := d.GetPending(); p != nil && p.WatchdogPID > 0 {
		if proc, err := os.FindProcess(p.WatchdogPID); err == nil {
			proc.Signal(syscall.SIGTERM)
		}
	}
	d.ClearPending()
}

// Restore makes the owned state previous again: nothing installed means
// destroy.
func Restore(ctx context.Context, b backends.Backend, previous *rules.Ruleset) error {
	if previous == nil || len(previous.Exposures) == 0 {
		return b.Destroy(ctx)
	}
	plan, err := b.Plan(ctx, previous)
	if err != nil {
		return err
	}
	return b.Apply(ctx, plan)
}

// Confirm keeps the change awaiting confirmation.
func Confirm(d *Dir, lockTimeout time.Duration) (*Pending, error) {
	lock, err := d.Acquire(lockTimeout, "portwarden confirm")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	p, err := d.GetPending()
	if err != nil || p == nil {
		return nil, err
	}
	d.disarm()
	return p, nil
}

// WaitConfirmed waits until the pending change is confirmed (true) or
// rolled back (false), bounded by its deadline plus grace.
func WaitConfirmed(ctx context.Context, d *Dir, deadline time.Time, grace time.Duration) (bool, error) {
	for time.Now().Before(deadline.Add(grace)) {
		p, err := d.GetPending()
		if err != nil {
			return false, err
		}
		if p == nil {
			return d.Kept(), nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false, fmt.Errorf("the change was neither confirmed nor rolled back by %s: check the watchdog (state in %s)", deadline.Add(grace).Format(time.RFC3339), d.Path)
}

// Watch is the watchdog: it waits for the pending change's deadline and
// rolls it back unless it was confirmed. open reopens the backend the
// change was applied with.
func Watch(ctx context.Context, d *Dir, open func(name string) (backends.Backend, error)) error {
	p, err := d.GetPending()
	if err != nil || p == nil {
		return err
	}
	for time.Now().Before(p.Deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(p.Deadline)):
		}
	}
	lock, err := d.Acquire(time.Minute, "portwarden rollback watchdog")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	now, err := d.GetPending()
	if err != nil || now == nil || !now.Deadline.Equal(p.Deadline) {
		return err // confirmed, or replaced by a newer change with its own watchdog
	}
	if err := d.rollBack(ctx, now, open, "the rollback watchdog: "+now.By+" did not confirm by "+now.Deadline.Format(time.RFC3339)); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return d.ClearPending()
}
