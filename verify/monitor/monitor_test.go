package monitor

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/usage"
)

func snapshot() *Snapshot {
	return &Snapshot{
		Backend: "nftables", Installed: true, Fingerprint: "fp",
		Ruleset: &rules.Ruleset{Exposures: []rules.Exposure{{Name: "ssh", Default: rules.Reject}, {Name: `we"b`, Default: rules.Accept}}},
		Counters: []backends.Counter{
			{Exposure: "ssh", Rule: "jump4", Packets: 1, Bytes: 60},
			{Exposure: "ssh", Rule: "jump4", Packets: 2, Bytes: 120}, // a second destination
			{Exposure: "ssh", Rule: "deny4", Packets: 5},
			{Exposure: "ssh", Rule: "deny4-log", Packets: 5},
			{Exposure: "ssh", Rule: "default", Packets: 7},
			{Exposure: `we"b`, Rule: "default", Packets: 9}, // accepts: not refused
		},
	}
}

func TestMetrics(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, snapshot()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`portwarden_rule_packets_total{backend="nftables",exposure="ssh",rule="jump4"} 3` + "\n",
		`portwarden_rule_bytes_total{backend="nftables",exposure="ssh",rule="jump4"} 180` + "\n",
		`portwarden_refused_packets_total{backend="nftables",exposure="ssh"} 12` + "\n",
		`portwarden_refused_packets_total{backend="nftables",exposure="we\"b"} 0` + "\n",
		`portwarden_drift{backend="nftables"} 0` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "last_apply") {
		t.Errorf("no apply was recorded, yet the metrics have a last apply time:\n%s", out)
	}
	if strings.Count(out, `rule="jump4"`) != 2 {
		t.Errorf("jump4 must be summed into one series per family:\n%s", out)
	}
}

func TestCheck(t *testing.T) {
	s := snapshot()
	if r := Check(s, CheckOptions{}); r.Code != OK {
		t.Fatalf("clean snapshot: %+v", r)
	}
	s.Drift = []string{"chain x-ssh\nchanged | by hand"}
	r := Check(s, CheckOptions{FailedTests: []string{"t1"}, TestsRun: 2})
	if r.Code != Critical || len(r.Reasons) != 2 {
		t.Fatalf("drift and a failing test: %+v", r)
	}
	var buf bytes.Buffer
	r.Write(&buf)
	line := buf.String()
	if strings.Count(line, "\n") != 1 || strings.Count(line, "|") != 1 || !strings.HasPrefix(line, "PORTWARDEN CRITICAL - drift: ") {
		t.Errorf("one status line with one '|' before the perfdata, got %q", line)
	}
	if !strings.Contains(line, "refused_packets=12c") || !strings.Contains(line, "failed_tests=1") {
		t.Errorf("perfdata: %q", line)
	}
	u := UnknownResult(errors.New("permission denied"))
	if u.Code != Unknown {
		t.Errorf("unknown: %+v", u)
	}
	// A state directory that could not be used warns, and does not hide
	// worse.
	s = snapshot()
	s.StateErr = errors.New("state directory /x is not safe: everyone can write it")
	if r := Check(s, CheckOptions{}); r.Code != Warning || !strings.Contains(r.Reasons[0], "everyone can write it") {
		t.Errorf("untrusted state: %+v", r)
	}
	s.Drift = []string{"by hand"}
	if r := Check(s, CheckOptions{}); r.Code != Critical || len(r.Reasons) != 2 {
		t.Errorf("untrusted state and drift: %+v", r)
	}
}

func usageReport(unused bool) *usage.Report {
	return &usage.Report{LastSeenKnown: true, Entries: 2, Exposures: []usage.Exposure{{Name: "ssh", Blocks: []usage.Block{{
		Range:   &rules.SourceRange{Filename: "policy.hcl", Start: policies.SourcePos{Line: 4}},
		Packets: 11,
		Entries: []usage.Entry{{Source: "198.18.0.2", Packets: 11}, {Source: "198.18.0.6", Unused: unused}},
	}}}}}
}

// TestBlockMetrics: per allow block packets, labelled file:line.
func TestBlockMetrics(t *testing.T) {
	s := snapshot()
	s.Usage = usageReport(true)
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, s); err != nil {
		t.Fatal(err)
	}
	want := `portwarden_allow_block_packets_total{backend="nftables",exposure="ssh",block="policy.hcl:4"} 11` + "\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, buf.String())
	}
}

// TestCheckUnused: --warn-unused gives WARNING naming the unused source,
// and OK when every source was seen; never without being asked.
func TestCheckUnused(t *testing.T) {
	s := snapshot()
	s.Usage = usageReport(true)
	if r := Check(s, CheckOptions{}); r.Code != OK {
		t.Fatalf("unused sources without --warn-unused: %+v", r)
	}
	r := Check(s, CheckOptions{WarnUnused: true, UnusedWindow: "0s"})
	var buf bytes.Buffer
	r.Write(&buf)
	if r.Code != Warning || !strings.Contains(buf.String(), "1 allowed source(s) unused, never seen since the rules went in: 198.18.0.6 (expose ssh, policy.hcl:4)") ||
		!strings.Contains(buf.String(), "unused_sources=1") {
		t.Errorf("%d %q", r.Code, buf.String())
	}
	s.Usage = usageReport(false)
	if r := Check(s, CheckOptions{WarnUnused: true, UnusedWindow: "30d"}); r.Code != OK {
		t.Errorf("every source used: %+v", r)
	}
}

func pfx(s ...string) rules.Prefixes {
	var ps []netip.Prefix
	for _, x := range s {
		ps = append(ps, netip.MustParsePrefix(x))
	}
	return rules.NewPrefixes(ps...)
}

// applied is a ruleset as an apply wrote it: two allowed sources, and one
// granted until a deadline that passes between the two checks below.
func applied(until time.Time) *rules.Ruleset {
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Drop, Allow: pfx("198.18.1.7/32", "198.18.10.0/24"), Deny: pfx("198.18.10.66/32"),
		Expiring: []rules.Grant{{Source: netip.MustParsePrefix("198.18.0.3/32"), Until: until}}}}}
	return rs.Canonical()
}

// TestChangedSinceApply: access opened by hand is a change as much as
// access removed; a grant that expired as applied is none, whether the
// kernel dropped it (nftables) or keeps it inert (iptables).
func TestChangedSinceApply(t *testing.T) {
	until := time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC)
	before, after := until.Add(-time.Hour), until.Add(time.Hour)
	a := applied(until)
	if got := ChangedSinceApply(a, applied(until), before); len(got) != 0 {
		t.Errorf("the kernel as applied: %q", got)
	}
	opened := applied(until)
	opened.Exposures[0].Allow = pfx("198.18.1.7/32", "198.18.10.0/24", "198.18.99.99/32")
	want := `expose "nscp" allows 1 source not in the last apply: 198.18.99.99`
	if got := ChangedSinceApply(a, opened, before); len(got) != 1 || got[0] != want {
		t.Errorf("a source allowed by hand: %q, want %q", got, want)
	}
	closed := applied(until)
	closed.Exposures[0].Allow = pfx("198.18.10.0/24")
	want = `expose "nscp" no longer allows 1 source of the last apply: 198.18.1.7`
	if got := ChangedSinceApply(a, closed, before); len(got) != 1 || got[0] != want {
		t.Errorf("a source removed by hand: %q, want %q", got, want)
	}
	expired := applied(until)
	expired.Exposures[0].Expiring = nil
	if got := ChangedSinceApply(a, expired, after); len(got) != 0 {
		t.Errorf("a grant the kernel dropped at its deadline: %q", got)
	}
	if got := ChangedSinceApply(a, applied(until), after); len(got) != 0 {
		t.Errorf("a grant the kernel keeps inert after its deadline: %q", got)
	}
	want = `expose "nscp" no longer admits 1 source granted until a deadline of the last apply: 198.18.0.3 until 2026-12-04T17:00:00Z`
	if got := ChangedSinceApply(a, expired, before); len(got) != 1 || got[0] != want {
		t.Errorf("a grant removed by hand before its deadline: %q, want %q", got, want)
	}
	other := applied(until)
	other.Exposures[0].Default = rules.Accept
	other.Exposures[0].Ports = []rules.PortRange{{First: 27, Last: 28}}
	other.Exposures = append(other.Exposures, rules.Exposure{Name: "web", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 80, Last: 80}}, Default: rules.Drop})
	got := strings.Join(ChangedSinceApply(a, other, before), "\n")
	for _, want := range []string{`expose "nscp" has default accept, the last apply drop`, `expose "nscp" opens 1 port range not in the last apply: 27-28`,
		`expose "nscp" no longer opens 1 port range of the last apply: 27`, `expose "web" is in the kernel but not in the last apply`} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if got := ChangedSinceApply(a, &rules.Ruleset{}, before); len(got) != 1 || got[0] != `expose "nscp" of the last apply is gone from the kernel` {
		t.Errorf("an exposure removed by hand: %q", got)
	}
}

// TestCheckDriftSinceApply: drift found since the last apply is CRITICAL
// and counted; one check cannot tell from expired access is a WARNING and
// a metric of its own.
func TestCheckDriftSinceApply(t *testing.T) {
	s := snapshot()
	s.Drift = []string{`expose "nscp" allows 1 source not in the last apply: 198.18.99.99`}
	r := Check(s, CheckOptions{})
	var buf bytes.Buffer
	r.Write(&buf)
	if r.Code != Critical || !strings.HasPrefix(buf.String(), `PORTWARDEN CRITICAL - drift: expose "nscp" allows 1 source not in the last apply: 198.18.99.99 | `) ||
		!strings.Contains(buf.String(), " drift=1 ") {
		t.Errorf("%d %q", r.Code, buf.String())
	}
	s = snapshot()
	s.DriftUnverified = "the kernel's rules differ from the last apply and access may have expired since"
	if r := Check(s, CheckOptions{}); r.Code != Warning || r.Reasons[0] != s.DriftUnverified {
		t.Errorf("unverified: %+v", r)
	}
	buf.Reset()
	s.Policy = &PolicyComparison{Path: "/etc/portwarden", Defaults: []string{"office"}}
	WriteMetrics(&buf, s)
	for _, want := range []string{`portwarden_drift_unverified{backend="nftables"} 1` + "\n", `portwarden_drift{backend="nftables"} 0` + "\n",
		`portwarden_policy_matches{backend="nftables",policy="/etc/portwarden",variables="office at its default"} 0` + "\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}

// TestCheckMismatchVariables: a named policy the kernel does not hold is
// CRITICAL, and says what variables it was loaded with.
func TestCheckMismatchVariables(t *testing.T) {
	r := Check(snapshot(), CheckOptions{Mismatch: "/etc/portwarden", MismatchVariables: "office at its default", MismatchAsApplied: true})
	want := "the kernel does not hold /etc/portwarden loaded with office at its default (it holds the last apply of /etc/portwarden: apply had other variables, or the policy changed since): run portwarden --policy /etc/portwarden plan"
	if r.Code != Critical || r.Reasons[0] != want {
		t.Errorf("%+v", r)
	}
	r = Check(snapshot(), CheckOptions{FailedTests: []string{"the office gets in"}, TestsRun: 2, TestsVariables: "office at its default"})
	want = "1 of 2 test block(s) fail against the kernel (the policy loaded with office at its default): the office gets in"
	if r.Code != Critical || r.Reasons[0] != want {
		t.Errorf("%+v", r)
	}
}

// TestAllowedPackets: allowed_packets counts every rule that admits,
// grant rules (sources allowed until a deadline) included, on both
// backends' rule names.
func TestAllowedPackets(t *testing.T) {
	s := snapshot()
	s.Counters = append(s.Counters,
		backends.Counter{Exposure: "ssh", Rule: "allow4", Packets: 1},
		backends.Counter{Exposure: "ssh", Rule: "allow4-new", Packets: 2},
		backends.Counter{Exposure: "ssh", Rule: "grant4", Packets: 4},
		backends.Counter{Exposure: "ssh", Rule: "grant6-new", Packets: 8},
		backends.Counter{Exposure: "ssh", Rule: "allow v4", Packets: 16},
		backends.Counter{Exposure: "ssh", Rule: "grant v4 198.18.0.3/32", Packets: 32},
	)
	var buf bytes.Buffer
	Check(s, CheckOptions{}).Write(&buf)
	if !strings.Contains(buf.String(), " allowed_packets=63c ") {
		t.Errorf("allowed packets must be 63: %q", buf.String())
	}
}

// TestMetricsPolicy: portwarden_policy_matches says the policy's path and,
// in words, the variables it was loaded with (PolicyComparison.Variables).
func TestMetricsPolicy(t *testing.T) {
	s := snapshot()
	s.Policy = &PolicyComparison{Path: `/etc/port"warden`, Matches: true, Inputs: []string{"--var office", "--var-file v.json"}, Defaults: []string{"vendor"}}
	var buf bytes.Buffer
	WriteMetrics(&buf, s)
	want := `portwarden_policy_matches{backend="nftables",policy="/etc/port\"warden",variables="--var office; --var-file v.json; vendor at its default"} 1` + "\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, buf.String())
	}
	buf.Reset()
	s.Policy = nil
	WriteMetrics(&buf, s)
	if strings.Contains(buf.String(), "portwarden_policy_matches") {
		t.Errorf("no policy known, yet:\n%s", buf.String())
	}
}
