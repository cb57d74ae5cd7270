package policies

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The expansion policy of issue 17: three nested for-expressions over
// range(0, 1024) ask for a billion values. It must fail within seconds,
// with a diagnostic at the for-expression, not exhaust the host.
const expansionPolicy = `locals {
  r = range(0, 1024)
}
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = flatten([for a in local.r : [for b in local.r : [for c in local.r : "198.18.${a % 256}.${c % 256}"]]])
  }
}
`

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExpansionFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"values", Options{MaxValues: 20_000, MaxEvalTime: time.Minute}, "more than 20000 values"},
		{"time", Options{MaxValues: 1 << 40, MaxEvalTime: 500 * time.Millisecond}, "longer than 500ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, diags := Load(writePolicy(t, expansionPolicy), tc.opts)
			if !diags.HasErrors() {
				t.Fatal("the expansion policy loaded")
			}
			d := diags[0]
			if d.Summary != "Policy too large to evaluate" || !strings.Contains(d.Detail, tc.want) || !strings.Contains(d.Detail, "PORTWARDEN_MAX_VALUES") {
				t.Errorf("diagnostic %q: %q", d.Summary, d.Detail)
			}
			if d.Subject == nil || d.Subject.Start.Line != 8 {
				t.Errorf("diagnostic at %v, want line 8 (the for-expression)", d.Subject)
			}
			if len(diags) > 3 {
				t.Errorf("%d diagnostics, want the one at the for-expression: %v", len(diags), diags)
			}
			t.Logf("failed after %s: %s", time.Since(start).Round(time.Millisecond), d.Detail)
		})
	}
}

// Doubling a list through locals is caught at the local that grows past
// the limit.
func TestDoublingLocalsFail(t *testing.T) {
	var b strings.Builder
	b.WriteString("locals {\n  l0 = range(0, 1024)\n")
	for i := 1; i <= 30; i++ {
		b.WriteString("  l" + itoa(i) + " = concat(local.l" + itoa(i-1) + ", local.l" + itoa(i-1) + ")\n")
	}
	b.WriteString("}\n")
	_, diags := Load(writePolicy(t, b.String()), Options{MaxValues: 100_000})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "more than 100000 values") {
		t.Fatalf("diagnostics: %v", diags)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A policy under the limits loads as before.
func TestBoundsLeaveOrdinaryPolicies(t *testing.T) {
	pol, diags := Load(writePolicy(t, `locals {
  hosts = [for i in range(0, 200) : "198.18.0.${i}"]
}
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = local.hosts
  }
}
`), Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if n := len(pol.Exposes[0].Allow[0].From); n != 200 {
		t.Errorf("%d sources, want 200", n)
	}
}
