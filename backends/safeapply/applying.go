package safeapply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// applyingFile records an apply in flight. It is written before the
// kernel changes and removed after the apply is recorded, so when it
// exists and nobody holds the lock, an apply was killed midway. It is
// staged like the journal (its space reserved, so a full disk stops the
// apply before the kernel changes) but not synced: a killed process's
// writes are in the page cache for the next one, and a machine that stops
// loses the kernel's rules too (the boot restore starts from nothing).
const applyingFile = "applying.json"

// Applying is the record of an apply in flight.
type Applying struct {
	Backend string `json:"backend"`
	// PreviousFingerprint is the fingerprint of the owned state before the
	// apply (of an empty Ruleset when nothing was installed);
	// DesiredFingerprint of what it was taking the kernel to. They are all
	// a backend that changes everything in one commit needs to tell which
	// side the kernel holds.
	PreviousFingerprint string `json:"previous_fingerprint,omitempty"`
	DesiredFingerprint  string `json:"desired_fingerprint,omitempty"`
	// Previous and Desired are the rulesets themselves, kept only for a
	// FamilyReporter, which compares each family's step: written as JSON
	// before the kernel changes, 100,000 sources cost a quarter of a second
	// here, most of an nftables apply of one changed source.
	Previous *rules.Ruleset `json:"previous,omitempty"`
	Desired  *rules.Ruleset `json:"desired,omitempty"`
	Started  time.Time      `json:"started"`
	By       string         `json:"by"`
	PID      int            `json:"pid"`
	// Damaged: the record exists but does not parse (the machine stopped
	// while it was written back): an apply was under way, nothing more is
	// known of it.
	Damaged bool `json:"damaged,omitempty"`
}

// newApplying is the record of an apply on b from previous (nil: nothing
// installed) to desired, whose fingerprint is desiredFP.
func newApplying(b backends.Backend, previous, desired *rules.Ruleset, desiredFP string) Applying {
	a := Applying{Backend: b.Name(), PreviousFingerprint: fingerprintOf(previous), DesiredFingerprint: desiredFP,
		Started: time.Now().UTC(), By: Who(), PID: os.Getpid()}
	if _, ok := b.(FamilyReporter); ok {
		a.Previous, a.Desired = previous, desired
	}
	return a
}

func (d *Dir) stageApplied(a Applied) (*staged, error) {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	return stageFile(d.file("applied.json"), append(data, '\n'))
}

func (d *Dir) beginApplying(a Applying) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	st, err := stageFile(d.file(applyingFile), append(data, '\n'))
	if err != nil {
		return err
	}
	return st.commit()
}

func (d *Dir) endApplying() error {
	err := os.Remove(d.file(applyingFile))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fileError("remove "+d.file(applyingFile), err)
}

// Unfinished reads the record of an apply that did not finish: nil when
// there is none, or when the apply that wrote it still runs (holds the
// lock).
func (d *Dir) Unfinished() (*Applying, error) {
	var a Applying
	ok, err := readJSON(d.file(applyingFile), &a)
	switch {
	case errors.Is(err, errDamaged):
		a = Applying{Damaged: true}
	case !ok || err != nil:
		return nil, err
	}
	l, err := d.tryAcquire("portwarden (checking for an unfinished apply)", false)
	if err != nil || l == nil {
		return nil, err // held: the apply is still running
	}
	l.Unlock()
	return &a, nil
}

// FamilyReporter is implemented by backends that change the address
// families in separate commits (iptables): they say, per family, which
// step of the transition from previous to desired the kernel holds.
type FamilyReporter interface {
	Holdings(ctx context.Context, previous, desired *rules.Ruleset) ([]string, error)
}

// Interruption describes an apply that did not finish, for plan and
// status.
type Interruption struct {
	Applying *Applying
	// Holds says what the kernel holds now, one line per family (or one
	// for the whole backend when it changes both families at once).
	Holds []string
}

// String is the notice plan and status print.
func (i *Interruption) String() string {
	if i.Applying.Damaged {
		return "The last apply did not finish, and its record (" + applyingFile + " in the state directory) is damaged: the machine stopped while it was being written." +
			"\nRun portwarden apply to complete a change (it starts from what the kernel holds now)."
	}
	s := fmt.Sprintf("The last apply (started %s by %s, pid %d) did not finish: it was killed or the machine stopped.",
		i.Applying.Started.Local().Format(time.RFC3339), i.Applying.By, i.Applying.PID)
	for _, h := range i.Holds {
		s += "\n  " + h
	}
	return s + "\nRun portwarden apply to complete a change (it starts from what the kernel holds now)."
}

// CheckUnfinished reports an unfinished apply on backend b, nil when
// there is none.
func CheckUnfinished(ctx context.Context, d *Dir, b backends.Backend) (*Interruption, error) {
	a, err := d.Unfinished()
	if err != nil || a == nil {
		return nil, err
	}
	in := &Interruption{Applying: a}
	if a.Damaged {
		return in, nil
	}
	if a.Backend != b.Name() {
		in.Holds = []string{"it used the " + a.Backend + " backend, not " + b.Name()}
		return in, nil
	}
	if fr, ok := b.(FamilyReporter); ok {
		in.Holds, err = fr.Holdings(ctx, a.Previous, a.Desired)
		return in, err
	}
	st, err := b.Current(ctx)
	if err != nil {
		return nil, err
	}
	previous, desired := a.PreviousFingerprint, a.DesiredFingerprint
	if previous == "" { // written by a version that kept the rulesets
		previous = fingerprintOf(a.Previous)
		if a.Desired != nil {
			desired = a.Desired.Fingerprint()
		}
	}
	switch fp := st.Ruleset.Fingerprint(); {
	case desired != "" && fp == desired:
		in.Holds = []string{"the kernel holds the new rules whole; only the record is missing"}
	case fp == previous:
		in.Holds = []string{"the kernel holds the previous rules whole"}
	default:
		in.Holds = []string{"the kernel holds neither the previous nor the new rules (changed since?)"}
	}
	return in, nil
}

func fingerprintOf(rs *rules.Ruleset) string {
	if rs == nil {
		rs = &rules.Ruleset{}
	}
	return rs.Fingerprint()
}
