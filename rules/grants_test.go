package rules

import (
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/portwarden/portwarden/policies"
)

func TestCompileGrants(t *testing.T) {
	policy := `
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = ["198.18.1.0/24"]
  }
  allow {
    from    = ["198.18.1.7", "198.18.2.0/24", "2001:2::7"]
    expires = "2026-12-04T00:00:00Z"
  }
  allow {
    from    = ["198.18.2.128/25"]
    expires = "2026-12-09T00:00:00Z"
  }
  allow {
    from    = ["198.18.3.3"]
    expires = "2026-12-01T00:00:00Z"
  }
  deny {
    from = ["198.18.2.1"]
  }
}
`
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	pol, diags := policies.LoadFS(fstest.MapFS{"p.hcl": {Data: []byte(policy)}}, "p.hcl", policies.Options{Now: now})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	e := rs.Exposures[0]
	var got []string
	for _, g := range e.Expiring {
		got = append(got, g.Source.String()+" "+g.Until.Format(time.RFC3339))
	}
	// 198.18.1.7 is allowed for good; .2.128/25 keeps the later deadline;
	// 198.18.3.3 has expired. Deny stays apart: it is checked first.
	want := []string{"198.18.2.0/25 2026-12-04T00:00:00Z", "198.18.2.128/25 2026-12-09T00:00:00Z", "2001:2::7/128 2026-12-04T00:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("grants = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("grants = %v, want %v", got, want)
		}
	}
	for _, tc := range []struct {
		src     string
		verdict Verdict
		until   string
	}{
		{"198.18.1.7", Accept, ""}, {"198.18.2.5", Accept, "2026-12-04T00:00:00Z"},
		{"198.18.2.200", Accept, "2026-12-09T00:00:00Z"}, {"198.18.2.1", Drop, ""}, {"198.18.3.3", Drop, ""},
	} {
		d := rs.Decide(Packet{Protocol: TCP, Source: netip.MustParseAddr(tc.src), Port: 27})
		u := ""
		if !d.Until.IsZero() {
			u = d.Until.Format(time.RFC3339)
		}
		if d.Verdict != tc.verdict || u != tc.until {
			t.Errorf("%s: %s until %q, want %s until %q", tc.src, d.Verdict, u, tc.verdict, tc.until)
		}
		if d.Verdict == Accept && (d.Origin == nil || d.Origin.Kind != OriginAllow) {
			t.Errorf("%s: no allow origin: %+v", tc.src, d.Origin)
		}
	}
	if n := rs.NextExpiry(); !n.Equal(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextExpiry = %v", n)
	}
	if soon := rs.ExpiringWithin(now, 3*24*time.Hour); len(soon) != 2 {
		t.Errorf("ExpiringWithin 3d = %v", soon)
	}

	// The kernel's view (per-deadline elements, unsorted, split) normalises
	// to the same model and fingerprint; a deadline that moves is a diff.
	kernel := rs.Clone()
	kernel.Exposures[0].Origins = nil
	kernel.Exposures[0].Expiring = []Grant{
		{netip.MustParsePrefix("2001:2::7/128"), time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)},
		{netip.MustParsePrefix("198.18.2.128/26"), time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC)},
		{netip.MustParsePrefix("198.18.2.192/26"), time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC)},
		{netip.MustParsePrefix("198.18.2.0/25"), time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)},
	}
	kernel.Normalize()
	if kernel.Fingerprint() != rs.Fingerprint() || !Compare(kernel, rs).Empty() {
		t.Fatalf("kernel view differs: %+v", Compare(kernel, rs))
	}
	kernel.Exposures[0].Expiring[0].Until = kernel.Exposures[0].Expiring[0].Until.Add(time.Hour)
	d := Compare(kernel, rs)
	if len(d.Exposures) != 1 || len(d.Exposures[0].Expiring.Added) != 1 || len(d.Exposures[0].Expiring.Removed) != 1 {
		t.Fatalf("moved deadline: %+v", d)
	}
	// Fingerprints of rulesets without grants are as they were.
	plain := &Ruleset{Exposures: []Exposure{{Name: "a", Protocol: TCP, Ports: []PortRange{{27, 27}}, Default: Drop}}}
	before := plain.Fingerprint()
	plain.Exposures[0].Expiring = []Grant{}
	if plain.Fingerprint() != before {
		t.Error("an empty grant list changed the fingerprint")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 40 * time.Second: "40s", 125 * time.Minute: "2h5m", 76 * time.Hour: "3d4h",
		24 * time.Hour: "1d", 24*time.Hour + 5*time.Minute: "1d", 7 * 24 * time.Hour: "7d", 90 * time.Second: "1m30s",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
