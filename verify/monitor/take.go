package monitor

import (
	"context"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
)

// Take reads a snapshot: the backend's owned state and counters in the
// caller's network namespace, and from the state directory under root
// ("" for the default, PORTWARDEN_STATE_DIR) the last apply, the change
// awaiting confirmation and the newest event of the history. status,
// check and metrics read the kernel through it.
func Take(ctx context.Context, b backends.Backend, root string) (*Snapshot, error) {
	st, err := b.Current(ctx)
	if err != nil {
		return nil, err
	}
	counters, err := b.Counters(ctx)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Backend: b.Name(), Installed: st.Installed, Ruleset: st.Ruleset, Drift: st.Drift,
		Counters: counters, Fingerprint: st.Ruleset.Fingerprint(), Taken: time.Now()}
	// The state directory is a record, not a requirement: without one
	// there is no last apply to report. One that is there but cannot be
	// trusted or read is said (StateErr) rather than taken for none.
	dir, err := safeapply.OpenExisting(root)
	s.stateError(err)
	if dir != nil {
		s.Pending, err = dir.GetPending()
		s.stateError(err)
		if s.Pending != nil {
			s.PendingUntil = s.Pending.Deadline
		}
		s.Applied, err = dir.LastApplied()
		s.stateError(err)
	}
	// The history outlives destroy, which removes the directory.
	s.LastEvent, err = safeapply.LastEvent(root)
	s.stateError(err)
	a := s.Applied
	if a == nil || a.Backend != b.Name() {
		return s, nil
	}
	s.LastApply, s.AppliedFingerprint = a.When, a.Fingerprint
	ev := s.LastEvent
	destroyed := ev != nil && ev.Action == "destroy" && ev.When.After(a.When)
	// A rollback to nothing installed records no fingerprint: nothing is
	// missing then.
	s.Missing = !destroyed && !st.Installed && !(a.RolledBack && a.Fingerprint == "")
	return s, nil
}

// stateError keeps the first error met reading the state directory.
func (s *Snapshot) stateError(err error) {
	if err != nil && s.StateErr == nil {
		s.StateErr = err
	}
}
