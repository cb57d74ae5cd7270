package safeapply

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/portwarden/portwarden/backends"
)

// Signals routes the signals that would end an apply. Before the apply
// starts (Take), SIGINT, SIGTERM and SIGHUP end the process as they would
// have (killed by the signal, nothing applied) once the background writers
// (Later: the kernel cache, the compile record, the sweep) are done, so
// that none leaves a temporary file (a write of the command's own
// goroutine, such as the namespace record the first command in a namespace
// makes, can still leave one: the next command's sweep does not remove
// it, but nothing reads it either); SIGPIPE (a write to a broken
// output pipe) only marks the output broken, and the apply then stops
// before the change. From Take on, every signal goes to Received: the
// apply stops on one that comes before the kernel changes, and one after
// waits until the whole transition is in (ApplyThroughSignals); a SIGINT
// or SIGTERM while the change awaits confirmation rolls it back
// (WaitOrDecline, RollbackDeclined). SIGINT and SIGHUP are left alone when
// the process started with them ignored (a background job of a script,
// nohup).
//
// SIGPIPE is caught, never ignored: the rollback watchdog apply starts
// would inherit an ignored signal, and a caught one is reset in it.
type Signals struct {
	in         chan os.Signal
	out        chan os.Signal
	mu         sync.Mutex
	taken      bool
	brokenPipe bool
}

// CatchSignals starts routing the signals that would end an apply, for
// the rest of the process.
func CatchSignals() *Signals {
	s := &Signals{in: make(chan os.Signal, 8), out: make(chan os.Signal, 8)}
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

func (s *Signals) route() {
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
			Settle()
			signal.Reset(sig)
			syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			select {}
		}
		s.mu.Unlock()
	}
}

// Take hands the signals to the apply from now on (Received), and reports
// whether the output broke before. It never returns once a signal is
// ending the process.
func (s *Signals) Take() (brokenPipe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken = true
	return s.brokenPipe
}

// BrokenPipe reports whether a SIGPIPE came before Take.
func (s *Signals) BrokenPipe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.brokenPipe
}

// Received delivers the signals that came after Take (a few are kept; more
// are dropped while those wait to be seen).
func (s *Signals) Received() <-chan os.Signal { return s.out }

// declines reports whether sig says no to a change awaiting confirmation:
// SIGINT or SIGTERM. SIGPIPE is the output going away, not the answer;
// SIGHUP the session dropping, which leaves the decision to the watchdog.
func declines(sig os.Signal) bool { return sig == syscall.SIGINT || sig == syscall.SIGTERM }

// ApplyThroughSignals is Apply with the signals of sigs caught: one before
// the kernel changes stops the apply with nothing applied (an
// *InterruptedError); one after it waits until the whole transition is
// in, so the kernel never stays half-way because of it. Once the change is
// in, noted is the first signal other than SIGPIPE that came during it
// (the caller says the change was completed first), and declined the
// first SIGINT or SIGTERM: a change awaiting confirmation is then to be
// rolled back (RollbackDeclined); else it stays.
func ApplyThroughSignals(ctx context.Context, d *Dir, b backends.Backend, plan *backends.Plan, opts Options, sigs <-chan os.Signal) (noted, declined os.Signal, err error) {
	opts.Interrupted = sigs
	if err := Apply(ctx, d, b, plan, opts); err != nil {
		return nil, nil, err
	}
	for _, sig := range waiting(sigs) {
		if sig == syscall.SIGPIPE {
			continue // the output broke: the report says so
		}
		if noted == nil {
			noted = sig
		}
		if declined == nil && declines(sig) {
			declined = sig
		}
	}
	return noted, declined, nil
}

// waiting takes every signal already waiting in sigs, without waiting.
func waiting(sigs <-chan os.Signal) []os.Signal {
	var got []os.Signal
	for {
		select {
		case sig := <-sigs:
			got = append(got, sig)
		default:
			return got
		}
	}
}

// PollDecline takes, without waiting, every signal already waiting in
// sigs, and returns the first SIGINT or SIGTERM among them: one last look,
// for an apply that leaves its change pending, at a no that came since
// ApplyThroughSignals returned. Why all of them: a no queued behind a
// signal that is not one (a SIGHUP as the session drops, then a SIGTERM
// as it ends the job) is still a no; looking at the first alone left the
// change pending.
func PollDecline(sigs <-chan os.Signal) os.Signal {
	var declined os.Signal
	for _, sig := range waiting(sigs) {
		if declined == nil && declines(sig) {
			declined = sig
		}
	}
	return declined
}
