package monitor

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
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
