package monitor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/usage"
)

// Snapshot is what the kernel and the state directory said at one moment.
type Snapshot struct {
	Backend   string
	Installed bool
	// Ruleset is what the kernel holds, decoded (exposure defaults decide
	// which counters are refusals).
	Ruleset *rules.Ruleset
	// Drift says how the kernel differs from what portwarden wrote: owned
	// objects changed by hand (Take: the backend's word), and, once
	// PolicyView.AddDriftSinceApply has run, access, ports and exposures
	// changed outside portwarden since the last apply (DriftSinceApply).
	Drift []string
	// DriftUnverified, when set, says that the kernel differs from the
	// last apply in a way that may be access that expired as applied or a
	// change by hand, which the command could not tell apart (it could
	// not rebuild what was applied); empty otherwise.
	DriftUnverified string
	Counters        []backends.Counter
	// Fingerprint is of the ruleset in the kernel.
	Fingerprint string
	// LastApply is when the state directory last recorded an apply; zero
	// when it has none.
	LastApply time.Time
	// AppliedFingerprint is the fingerprint the last apply wrote; empty
	// when unknown. Missing says the kernel no longer holds it although no
	// destroy was recorded since.
	AppliedFingerprint string
	Missing            bool
	// PendingUntil is when an unconfirmed change rolls back; zero when
	// none waits.
	PendingUntil time.Time
	// Applied, Pending and LastEvent are the records as Take read them:
	// the last apply whatever its backend (LastApply and
	// AppliedFingerprint are of an apply with this backend only), the
	// change awaiting confirmation, and the newest event of the history,
	// which outlives the destroy that removes the state directory; nil
	// when there is none or it cannot be read.
	Applied   *safeapply.Applied
	Pending   *safeapply.Pending
	LastEvent *safeapply.Event
	// StateErr is why the state directory, there, was not used (it may not
	// be trusted, or a record is unreadable): the last apply, the pending
	// change and the history are then unknown, not absent.
	StateErr error
	// Usage is what the kernel recorded per allow block and entry; nil
	// when the backend keeps no such records.
	Usage *usage.Report
	// Policy is the policy the command compared the kernel with
	// (--policy, else the one last applied: PolicyView.Match), nil when
	// none is known.
	Policy *PolicyComparison
	// Taken is when the snapshot was read.
	Taken time.Time
}

// RuleCounter is a backend's counters summed per exposure and rule.
type RuleCounter struct {
	Exposure, Rule string
	Packets, Bytes uint64
}

// Rules sums the counters per exposure and rule name, in a stable order.
func (s *Snapshot) Rules() []RuleCounter {
	idx := map[[2]string]int{}
	var out []RuleCounter
	for _, c := range s.Counters {
		k := [2]string{c.Exposure, c.Rule}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, RuleCounter{Exposure: c.Exposure, Rule: c.Rule})
		}
		out[i].Packets += c.Packets
		out[i].Bytes += c.Bytes
	}
	slices.SortStableFunc(out, func(a, b RuleCounter) int {
		if c := strings.Compare(a.Exposure, b.Exposure); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return out
}

// Refused is the packets each exposure refused: counted by its deny rules
// and, when its default refuses, by its default rule.
func (s *Snapshot) Refused() map[string]uint64 {
	defaults := map[string]rules.Verdict{}
	out := map[string]uint64{}
	if s.Ruleset != nil {
		for _, e := range s.Ruleset.Exposures {
			defaults[e.Name] = e.Default
			out[e.Name] = 0
		}
	}
	for _, c := range s.Counters {
		if c.Exposure == "" {
			continue
		}
		kind, _, _ := strings.Cut(c.Rule, " ")
		switch {
		case strings.Contains(kind, "log"):
			// A log rule counts the packets its deny or default rule counts.
		case strings.HasPrefix(kind, "deny"):
			out[c.Exposure] += c.Packets
		case kind == "default":
			if d := defaults[c.Exposure]; d == rules.Drop || d == rules.Reject {
				out[c.Exposure] += c.Packets
			}
		}
	}
	return out
}

// WriteMetrics writes the snapshot in the Prometheus text exposition
// format, version 0.0.4.
func WriteMetrics(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriter(w)
	backend := label("backend", s.Backend)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("portwarden_installed", "gauge", "Whether portwarden owns firewall objects in this network namespace (1) or not (0).")
	fmt.Fprintf(bw, "portwarden_installed{%s} %d\n", backend, b2i(s.Installed))
	family("portwarden_drift", "gauge", "Whether the kernel differs from what portwarden wrote (1) or not (0): owned objects changed by hand, or access opened or closed outside portwarden since the last apply.")
	fmt.Fprintf(bw, "portwarden_drift{%s} %d\n", backend, b2i(len(s.Drift) > 0))
	family("portwarden_drift_objects", "gauge", "How many differences portwarden_drift found (an owned object, or per exposure one kind of change since the last apply).")
	fmt.Fprintf(bw, "portwarden_drift_objects{%s} %d\n", backend, len(s.Drift))
	family("portwarden_drift_unverified", "gauge", "Whether the kernel differs from the last apply in a way that may be access that expired or a change by hand, which this run could not tell apart (1; give metrics the variables apply had) or not (0).")
	fmt.Fprintf(bw, "portwarden_drift_unverified{%s} %d\n", backend, b2i(s.DriftUnverified != ""))
	family("portwarden_rules_missing", "gauge", "Whether the last applied rules are gone from the kernel without a recorded destroy (1) or not (0).")
	fmt.Fprintf(bw, "portwarden_rules_missing{%s} %d\n", backend, b2i(s.Missing))
	family("portwarden_pending_confirmation", "gauge", "Whether an applied change awaits portwarden confirm and will roll back without it (1) or not (0).")
	fmt.Fprintf(bw, "portwarden_pending_confirmation{%s} %d\n", backend, b2i(!s.PendingUntil.IsZero()))
	exposures := 0
	if s.Ruleset != nil {
		exposures = len(s.Ruleset.Exposures)
	}
	family("portwarden_exposures", "gauge", "Exposures installed in the kernel.")
	fmt.Fprintf(bw, "portwarden_exposures{%s} %d\n", backend, exposures)
	family("portwarden_policy_info", "gauge", "The fingerprint of the ruleset in the kernel and of the last apply; the value is always 1.")
	fmt.Fprintf(bw, "portwarden_policy_info{%s,%s,%s} 1\n", backend, label("fingerprint", s.Fingerprint), label("applied_fingerprint", s.AppliedFingerprint))
	if p := s.Policy; p != nil {
		family("portwarden_policy_matches", "gauge", `Whether the policy (--policy, else the one last applied), loaded with the variables this run was given (variables="..."), compiles to what the kernel holds (1) or not (0). Allow block series carry its file:line only when it does.`)
		fmt.Fprintf(bw, "portwarden_policy_matches{%s,%s,%s} %d\n", backend, label("policy", p.Path), label("variables", p.Variables()), b2i(p.Matches))
	}
	if !s.LastApply.IsZero() {
		family("portwarden_last_apply_timestamp_seconds", "gauge", "When the policy was last applied, in seconds since the Unix epoch.")
		fmt.Fprintf(bw, "portwarden_last_apply_timestamp_seconds{%s} %d\n", backend, s.LastApply.Unix())
	}
	if s.Ruleset != nil {
		if next := s.Ruleset.NextExpiry(); !next.IsZero() {
			now := s.Taken
			if now.IsZero() {
				now = time.Now()
			}
			family("portwarden_next_expiry_timestamp_seconds", "gauge", "When the next access granted until a deadline (expires) ends, in seconds since the Unix epoch.")
			fmt.Fprintf(bw, "portwarden_next_expiry_timestamp_seconds{%s} %d\n", backend, next.Unix())
			family("portwarden_next_expiry_seconds", "gauge", "Seconds from this snapshot until the next access granted until a deadline ends.")
			fmt.Fprintf(bw, "portwarden_next_expiry_seconds{%s} %d\n", backend, int64(next.Sub(now).Seconds()))
		}
	}
	rs := s.Rules()
	if len(rs) > 0 {
		family("portwarden_rule_packets_total", "counter", "Packets counted by an owned rule.")
		for _, r := range rs {
			fmt.Fprintf(bw, "portwarden_rule_packets_total{%s,%s,%s} %d\n", backend, label("exposure", r.Exposure), label("rule", r.Rule), r.Packets)
		}
		family("portwarden_rule_bytes_total", "counter", "Bytes counted by an owned rule.")
		for _, r := range rs {
			fmt.Fprintf(bw, "portwarden_rule_bytes_total{%s,%s,%s} %d\n", backend, label("exposure", r.Exposure), label("rule", r.Rule), r.Bytes)
		}
	}
	if s.Usage != nil && len(s.Usage.Exposures) > 0 {
		family("portwarden_allow_block_packets_total", "counter",
			`Packets the kernel admitted through an allow block's sources (block="file:line"; "kernel" when no known policy matches the kernel). A kernel element covering sources of several blocks counts for each.`)
		for _, x := range s.Usage.Exposures {
			for _, b := range x.Blocks {
				where := b.Where()
				if where == "" {
					where = "kernel"
				}
				fmt.Fprintf(bw, "portwarden_allow_block_packets_total{%s,%s,%s} %d\n", backend, label("exposure", x.Name), label("block", where), b.Packets)
			}
		}
	}
	refused := s.Refused()
	if len(refused) > 0 {
		names := make([]string, 0, len(refused))
		for n := range refused {
			names = append(names, n)
		}
		slices.Sort(names)
		family("portwarden_refused_packets_total", "counter", "Packets an exposure refused: by its deny rules and by a default of drop or reject.")
		for _, n := range names {
			fmt.Fprintf(bw, "portwarden_refused_packets_total{%s,%s} %d\n", backend, label("exposure", n), refused[n])
		}
	}
	return bw.Flush()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// label writes name="value" with the escapes the text format asks for.
func label(name, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return name + `="` + r.Replace(value) + `"`
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so a collector reading path sees the old file or
// the new one, never half of one.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w (is the directory there and writable?)", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// node_exporter runs as its own user: the file must be readable.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// formatUint is strconv's, named for the perfdata writer.
func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }
