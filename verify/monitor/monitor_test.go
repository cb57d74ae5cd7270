package monitor

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
