package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdCountersMatch: countersmatch STATUS.json METRICS.prom checks that
// every rule counter status --json printed is in the metrics with the same
// packets and bytes (summed per exposure and rule, as metrics does), and
// that some packet was counted at all.
func cmdCountersMatch(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: countersmatch STATUS.json METRICS.prom")
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &st); err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	prom := ts.ReadFile(args[1])
	s := monitor.Snapshot{Counters: st.Counters}
	var total uint64
	for _, r := range s.Rules() {
		for _, m := range []struct {
			name string
			n    uint64
		}{{"portwarden_rule_packets_total", r.Packets}, {"portwarden_rule_bytes_total", r.Bytes}} {
			line := fmt.Sprintf("%s{backend=%q,exposure=%q,rule=%q} %d\n", m.name, st.Backend, r.Exposure, r.Rule, m.n)
			if !strings.Contains(prom, line) {
				ts.Fatalf("status says %q, the metrics do not have it", strings.TrimSpace(line))
			}
		}
		total += r.Packets
	}
	if total == 0 {
		ts.Fatalf("no packet was counted: the test sent none")
	}
}
