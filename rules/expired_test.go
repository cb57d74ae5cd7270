package rules

import (
	"net/netip"
	"testing"
	"time"
)

// A source whose access ended gets the default, and the decision names
// the allow block (and list file line) that admitted it until when.
func TestDecideExpired(t *testing.T) {
	policy := `
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from    = ["198.18.0.9", "198.18.0.10"]
    expires = "2026-12-01T00:00:00Z"
  }
  allow {
    from = [address_group.auditor]
  }
  allow {
    from    = [address_group.auditor]
    expires = "2026-11-01T00:00:00Z"
  }
  allow {
    from = ["198.18.0.10"]
  }
}
address_group "auditor" {
  members_file = "auditor.txt"
}
`
	list := "198.18.0.4 expires=2026-11-15T00:00:00Z\n198.18.0.5 expires=2026-10-01T00:00:00Z\n198.18.0.6\n"
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	rs := compileText(t, policy, map[string]string{"auditor.txt": list}, now)
	for _, tc := range []struct {
		src      string
		verdict  Verdict
		block    int    // line of the allow block that admitted it; 0: no expired access
		until    string // its deadline
		deadline string
		line     int // the list file line
	}{
		{"198.18.0.9", Drop, 5, "2026-12-01T00:00:00Z", DeadlineBlock, 0},
		// Listed in two blocks: the later deadline, its line's own.
		{"198.18.0.4", Drop, 9, "2026-11-15T00:00:00Z", DeadlineLine, 1},
		// The line's deadline comes before the block's.
		{"198.18.0.5", Drop, 9, "2026-10-01T00:00:00Z", DeadlineLine, 2},
		// Allowed for good by the first auditor block: no expired access.
		{"198.18.0.6", Accept, 0, "", "", 0},
		// Expired in one block, allowed for good in another.
		{"198.18.0.10", Accept, 0, "", "", 0},
		{"198.18.0.7", Drop, 0, "", "", 0},
	} {
		d := rs.Decide(Packet{Protocol: TCP, Source: netip.MustParseAddr(tc.src), Port: 27})
		if d.Verdict != tc.verdict {
			t.Errorf("%s: %s, want %s", tc.src, d.Verdict, tc.verdict)
		}
		x := d.Expired
		if tc.block == 0 {
			if x != nil {
				t.Errorf("%s: expired %+v, want none", tc.src, x)
			}
			continue
		}
		if x == nil {
			t.Errorf("%s: no expired access", tc.src)
			continue
		}
		if d.Origin == nil || d.Origin.Kind != OriginDefault {
			t.Errorf("%s: decided by %+v, want the default", tc.src, d.Origin)
		}
		if x.Origin.Range.Start.Line != tc.block || x.Until.Format(time.RFC3339) != tc.until || x.Deadline != tc.deadline {
			t.Errorf("%s: expired %s:%d until %s by %s, want line %d until %s by %s", tc.src, x.Origin.Range.Filename, x.Origin.Range.Start.Line, x.Until.Format(time.RFC3339), x.Deadline, tc.block, tc.until, tc.deadline)
		}
		switch {
		case tc.line == 0 && x.Line != nil:
			t.Errorf("%s: line %+v, want none", tc.src, x.Line)
		case tc.line != 0 && (x.Line == nil || x.Line.Filename != "auditor.txt" || x.Line.Start.Line != tc.line):
			t.Errorf("%s: line %+v, want auditor.txt:%d", tc.src, x.Line, tc.line)
		}
	}

	// A prefix: each expired source is a range of its own.
	ranges := rs.DecideRange(Packet{Protocol: TCP, Port: 27}, netip.MustParsePrefix("198.18.0.0/29"))
	var got []string
	for _, r := range ranges {
		s := r.From.String() + "-" + r.To.String() + " " + string(r.Decision.Verdict)
		if r.Decision.Expired != nil {
			s += " expired"
		}
		got = append(got, s)
	}
	want := []string{"198.18.0.0-198.18.0.3 drop", "198.18.0.4-198.18.0.4 drop expired", "198.18.0.5-198.18.0.5 drop expired", "198.18.0.6-198.18.0.6 accept", "198.18.0.7-198.18.0.7 drop"}
	if len(got) != len(want) {
		t.Fatalf("ranges = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ranges = %q, want %q", got, want)
		}
	}
}
