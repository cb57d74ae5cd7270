package monitor

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/usage"
)

// Nagios plugin exit codes.
const (
	OK       = 0
	Warning  = 1
	Critical = 2
	Unknown  = 3
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// Result is one plugin run: a state, the reasons for it, and perfdata.
type Result struct {
	Code    int
	Reasons []string // why the state is not OK, worst first
	Summary string   // what an OK run says
	Perf    []Perf
}

// Perf is one performance datum: label=value[UOM];warn;crit;min;max.
type Perf struct {
	Label string
	Value string
}

// raise sets the state to code when it is worse, and adds the reason.
func (r *Result) raise(code int, reason string) {
	if code > r.Code {
		r.Code = code
	}
	r.Reasons = append(r.Reasons, reason)
}

// CheckOptions are what a check looks at besides the snapshot.
type CheckOptions struct {
	// FailedTests are the test blocks that fail against the kernel's
	// ruleset (check --verify); nil when not asked.
	FailedTests []string
	TestsRun    int
	// TestsVariables says what variables the policy of the tests was
	// loaded with; empty when it declares none.
	TestsVariables string
	// Mismatch is the path of a policy the kernel was compared with and
	// does not hold; empty when it holds it or none was named.
	// MismatchVariables says what variables it was loaded with (empty: it
	// declares none); MismatchAsApplied, that the kernel holds the last
	// apply of that path all the same (apply had other variables, or the
	// policy changed since).
	Mismatch          string
	MismatchVariables string
	MismatchAsApplied bool
	// WarnUnused asks for a WARNING when an allowed source is unused:
	// Snapshot.Usage, built with this window, says which (check
	// --warn-unused); UnusedWindow is it as the user wrote it.
	WarnUnused   bool
	UnusedWindow string
	// WarnExpiry: WARNING when access the kernel holds ends within it
	// (check --warn-expiry); zero: never.
	WarnExpiry time.Duration
	// Now is when the check runs; zero: time.Now().
	Now time.Time
}

// Check judges a snapshot: CRITICAL for drift (owned objects changed by
// hand, or access opened or closed outside portwarden since the last
// apply), for applied rules missing from the kernel, for a named policy
// the kernel does not hold and for failing test blocks; WARNING for a
// difference from the last apply that may be expired access or a change
// by hand (DriftUnverified), for a change that awaits confirmation (it
// will roll back), for a state directory that could not be used
// (StateErr), and for what the options ask to warn about; OK otherwise.
func Check(s *Snapshot, o CheckOptions) Result {
	r := Result{}
	if len(s.Drift) > 0 {
		r.raise(Critical, fmt.Sprintf("drift: %s", strings.Join(s.Drift, "; ")))
	}
	if s.DriftUnverified != "" {
		r.raise(Warning, s.DriftUnverified)
	}
	if s.StateErr != nil {
		r.raise(Warning, fmt.Sprintf("the state directory was not used, so changes since the last apply are not judged: %s", oneLine(s.StateErr.Error())))
	}
	if s.Missing {
		r.raise(Critical, "the rules last applied are missing from the kernel (no destroy recorded): run portwarden plan")
	}
	if o.Mismatch != "" && len(s.Drift) == 0 {
		what := o.Mismatch
		if o.MismatchVariables != "" {
			what += " loaded with " + o.MismatchVariables
		}
		if o.MismatchAsApplied {
			what += fmt.Sprintf(" (it holds the last apply of %s: apply had other variables, or the policy changed since)", o.Mismatch)
		}
		r.raise(Critical, fmt.Sprintf("the kernel does not hold %s: run portwarden --policy %s plan", what, o.Mismatch))
	}
	if n := len(o.FailedTests); n > 0 {
		with := ""
		if o.TestsVariables != "" {
			with = " (the policy loaded with " + o.TestsVariables + ")"
		}
		r.raise(Critical, fmt.Sprintf("%d of %d test block(s) fail against the kernel%s: %s", n, o.TestsRun, with, strings.Join(o.FailedTests, ", ")))
	}
	if !s.PendingUntil.IsZero() {
		r.raise(Warning, fmt.Sprintf("a change awaits portwarden confirm and rolls back at %s", s.PendingUntil.UTC().Format(time.RFC3339)))
	}
	var unused []string
	if o.WarnUnused && s.Usage != nil {
		unused = unusedEntries(s.Usage)
		if len(unused) > 0 {
			r.raise(Warning, unusedReason(s.Usage, unused, o.UnusedWindow))
		}
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	var next time.Time
	if s.Ruleset != nil {
		next = s.Ruleset.NextExpiry()
		if soon := s.Ruleset.ExpiringWithin(now, o.WarnExpiry); o.WarnExpiry > 0 && len(soon) > 0 {
			r.raise(Warning, fmt.Sprintf("%d source(s) lose access within %s, the first %s of expose %s at %s",
				len(soon), rules.HumanDuration(o.WarnExpiry), soon[0].Source, soon[0].Exposure, soon[0].Until.Format(time.RFC3339)))
		}
	}
	exposures := 0
	if s.Ruleset != nil {
		exposures = len(s.Ruleset.Exposures)
	}
	if s.Installed {
		r.Summary = fmt.Sprintf("%s holds %d exposure(s) as applied", s.Backend, exposures)
	} else {
		r.Summary = fmt.Sprintf("portwarden owns no %s objects here", s.Backend)
	}
	var refused uint64
	for _, n := range s.Refused() {
		refused += n
	}
	var accepted uint64
	for _, c := range s.Rules() {
		if Accepts(c.Rule) {
			accepted += c.Packets
		}
	}
	r.Perf = []Perf{
		{"exposures", fmt.Sprint(exposures)},
		{"drift", fmt.Sprint(len(s.Drift))},
		{"allowed_packets", formatUint(accepted) + "c"},
		{"refused_packets", formatUint(refused) + "c"},
	}
	if o.WarnUnused && s.Usage != nil {
		r.Perf = append(r.Perf, Perf{"unused_sources", fmt.Sprint(len(unused))})
	}
	if !next.IsZero() {
		r.Perf = append(r.Perf, Perf{"next_expiry", fmt.Sprintf("%ds", int64(next.Sub(now).Seconds()))})
	}
	if o.FailedTests != nil || o.TestsRun > 0 {
		r.Perf = append(r.Perf, Perf{"failed_tests", fmt.Sprint(len(o.FailedTests))})
	}
	return r
}

// Accepts reports whether a rule of this name admits the sources it
// names: the allow rules, and the grant rules that admit sources until a
// deadline (nftables "allow4", "allow4-new", "grant6", "grant6-new";
// iptables "allow v4", "grant v4 198.18.0.3/32").
func Accepts(rule string) bool {
	return strings.HasPrefix(rule, "allow") || strings.HasPrefix(rule, "grant")
}

// UnknownResult is the result when the kernel cannot be read at all.
func UnknownResult(err error) Result {
	return Result{Code: Unknown, Reasons: []string{oneLine(err.Error())}}
}

// Write prints the plugin output: one status line with perfdata after '|'.
func (r Result) Write(w io.Writer) error {
	text := r.Summary
	if len(r.Reasons) > 0 {
		text = strings.Join(r.Reasons, "; ")
	}
	line := "PORTWARDEN " + stateNames[r.Code] + " - " + oneLine(text)
	if len(r.Perf) > 0 {
		parts := make([]string, len(r.Perf))
		for i, p := range r.Perf {
			parts[i] = p.Label + "=" + p.Value
		}
		line += " | " + strings.Join(parts, " ")
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// oneLine keeps the status line one line, and without the '|' that would
// start the perfdata.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "|", "/").Replace(s)
}

// unusedEntries names the unused allowed sources: "SOURCE (expose NAME,
// FILE:LINE)".
func unusedEntries(u *usage.Report) []string {
	var out []string
	for _, x := range u.Exposures {
		for _, b := range x.Blocks {
			for _, e := range b.Entries {
				if !e.Unused {
					continue
				}
				where := "expose " + x.Name
				if b.Where() != "" {
					where += ", " + b.Where()
				}
				out = append(out, fmt.Sprintf("%s (%s)", e.Source, where))
			}
		}
	}
	return out
}

// unusedReason says which sources are unused and by what measure, naming
// at most five.
func unusedReason(u *usage.Report, unused []string, window string) string {
	how := "not seen in " + window
	if u.UnusedSince == 0 {
		how = "never seen since the rules went in"
	}
	if !u.LastSeenKnown {
		how = "no packets counted (last-seen unknown: " + u.LastSeenWhy + ")"
	}
	list := unused
	more := ""
	if len(list) > 5 {
		list, more = list[:5], fmt.Sprintf(" and %d more", len(unused)-5)
	}
	return fmt.Sprintf("%d allowed source(s) unused, %s: %s%s", len(unused), how, strings.Join(list, ", "), more)
}
