package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

const testPolicy = `
variable "office" {
  type    = list(string)
  default = ["198.18.10.0/24"]
}
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  default  = "drop"

  allow {
    from    = ["198.18.1.7", var.office]
    comment = "office"
  }
}
test "the office gets in" {
  from   = "198.18.10.5"
  to     = expose.nscp
  expect = "allow"
}
test "a stranger gets in" {
  from   = "198.18.99.5"
  to     = expose.nscp
  expect = "allow"
}
`

// writePolicy writes src as policy.hcl in a directory of its own.
func writePolicy(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// compiled is what path compiles to with opts, as the kernel would hold it.
func compiled(t *testing.T, path string, opts policies.Options) *rules.Ruleset {
	t.Helper()
	pol, diags := policies.Load(path, opts)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// stateRoot is a state directory whose last apply is a, and whose compile
// record, when c is not nil, is c.
func stateRoot(t *testing.T, a safeapply.Applied, c *safeapply.Compiled) string {
	t.Helper()
	root := t.TempDir()
	dir, err := safeapply.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(safeapply.Settle)
	if err := dir.RecordApplied(a); err != nil {
		t.Fatal(err)
	}
	if c != nil {
		if err := dir.RecordCompiled(*c); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPolicyComparisonVariables(t *testing.T) {
	for _, c := range []struct {
		m    PolicyComparison
		want string
	}{
		{PolicyComparison{}, ""},
		{PolicyComparison{Defaults: []string{"office"}}, "office at its default"},
		{PolicyComparison{Defaults: []string{"office", "vendor"}}, "office, vendor at their defaults"},
		{PolicyComparison{Inputs: []string{"--var office", "--var-file vars.hcl.json"}, Defaults: []string{"vendor"}},
			"--var office; --var-file vars.hcl.json; vendor at its default"},
	} {
		if got := c.m.Variables(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}

// TestPolicyViewMatch: a named policy matches the kernel that holds what
// it compiles to, with no drift; its ruleset then groups the sources.
func TestPolicyViewMatch(t *testing.T) {
	path := writePolicy(t, testPolicy)
	opts := policies.Options{Trust: policies.TrustWarn}
	kernel := compiled(t, path, opts)
	v := NewPolicyView(PolicyViewConfig{Policy: path, Named: true, Options: opts, Inputs: []string{"--var-file v.json"},
		StateRoot: filepath.Join(t.TempDir(), "none")})
	if !v.Named() || v.Path() != path {
		t.Fatalf("Named %v, Path %q", v.Named(), v.Path())
	}
	m, rs := v.Match("nftables", kernel, nil)
	if m == nil || !m.Matches || rs == nil || m.Error != "" || m.AsApplied {
		t.Fatalf("the kernel holds the policy: %+v, ruleset %v", m, rs != nil)
	}
	if got := m.Variables(); got != "--var-file v.json; office at its default" {
		t.Errorf("variables %q", got)
	}
	if m, rs := v.Match("nftables", kernel, []string{"changed by hand"}); m.Matches || rs != nil {
		t.Errorf("drift is no match: %+v", m)
	}
	if m, rs := v.Match("nftables", &rules.Ruleset{}, nil); m.Matches || rs != nil || m.AsApplied {
		t.Errorf("an empty kernel: %+v", m)
	}

	missing := filepath.Join(t.TempDir(), "nothing.hcl")
	v = NewPolicyView(PolicyViewConfig{Policy: missing, Named: true, Options: opts, StateRoot: filepath.Join(t.TempDir(), "none")})
	m, _ = v.Match("nftables", kernel, nil)
	if want := "the policy does not load: run portwarden --policy " + missing + " validate"; m.Error != want {
		t.Errorf("error %q, want %q", m.Error, want)
	}

	// Not named, and nothing applied: no policy to compare with.
	v = NewPolicyView(PolicyViewConfig{Policy: ".", Options: opts, StateRoot: filepath.Join(t.TempDir(), "none")})
	if m, rs := v.Match("nftables", kernel, nil); m != nil || rs != nil || v.Path() != "" {
		t.Errorf("nothing applied: %+v, path %q", m, v.Path())
	}
}

// TestPolicyViewAsApplied: the kernel holds the last apply of the policy,
// which with other variables compiles to other rules.
func TestPolicyViewAsApplied(t *testing.T) {
	path := writePolicy(t, testPolicy)
	opts := policies.Options{Trust: policies.TrustWarn}
	kernel := compiled(t, path, policies.Options{Trust: policies.TrustWarn, Vars: map[string]string{"office": `["198.18.44.0/24"]`}})
	root := stateRoot(t, safeapply.Applied{Fingerprint: kernel.Fingerprint(), Backend: "nftables", When: time.Now(), Policy: path}, nil)
	v := NewPolicyView(PolicyViewConfig{Policy: ".", Options: opts, StateRoot: root})
	if v.Path() != path {
		t.Fatalf("the policy last applied: %q", v.Path())
	}
	m, rs := v.Match("nftables", kernel, nil)
	if m.Matches || !m.AsApplied || rs != nil {
		t.Errorf("%+v", m)
	}
	if m, _ := v.Match("iptables", kernel, nil); m.AsApplied {
		t.Errorf("applied with another backend: %+v", m)
	}
}

// TestDriftSinceApply: a source allowed by hand is drift, said exactly
// when the policy rebuilds the apply; when it does not, the kernel's
// difference is drift, or unverified when access may have expired since.
func TestDriftSinceApply(t *testing.T) {
	path := writePolicy(t, testPolicy)
	opts := policies.Options{Trust: policies.TrustWarn}
	applied := compiled(t, path, opts)
	a := safeapply.Applied{Fingerprint: applied.Fingerprint(), Backend: "nftables", When: time.Now(), Policy: path}
	root := stateRoot(t, a, nil)
	now := time.Now()

	v := NewPolicyView(PolicyViewConfig{Policy: ".", Options: opts, StateRoot: root})
	if changes, unverified := v.DriftSinceApply("nftables", &backends.State{Installed: true, Ruleset: applied}, now); changes != nil || unverified != "" {
		t.Errorf("the kernel as applied: %q %q", changes, unverified)
	}
	opened := compiled(t, path, opts)
	opened.Exposures[0].Allow = rules.NewPrefixes(append(opened.Exposures[0].Allow.All(), pfx("198.18.99.99/32").All()...)...)
	opened = opened.Canonical()
	want := `expose "nscp" allows 1 source not in the last apply: 198.18.99.99`
	changes, unverified := v.DriftSinceApply("nftables", &backends.State{Installed: true, Ruleset: opened}, now)
	if len(changes) != 1 || changes[0] != want || unverified != "" {
		t.Errorf("a source allowed by hand: %q %q, want %q", changes, unverified, want)
	}
	if changes, unverified := v.DriftSinceApply("iptables", &backends.State{Installed: true, Ruleset: opened}, now); changes != nil || unverified != "" {
		t.Errorf("applied with another backend: %q %q", changes, unverified)
	}

	// Other variables do not rebuild the apply: the policy grants
	// nothing until a deadline, so the difference is drift.
	other := policies.Options{Trust: policies.TrustWarn, Vars: map[string]string{"office": `["198.18.44.0/24"]`}}
	v = NewPolicyView(PolicyViewConfig{Policy: ".", Options: other, Inputs: []string{"--var office"}, StateRoot: root})
	changes, unverified = v.DriftSinceApply("nftables", &backends.State{Installed: true, Ruleset: opened}, now)
	if len(changes) != 1 || unverified != "" || !strings.Contains(changes[0], path+" loaded with --var office does not rebuild that apply to say how") {
		t.Errorf("other variables: %q %q", changes, unverified)
	}

	// The compile record of the apply says a grant has expired since:
	// the difference may be that.
	root = stateRoot(t, a, &safeapply.Compiled{Fingerprint: a.Fingerprint, Backend: "nftables", NextExpiry: now.Add(-time.Minute)})
	v = NewPolicyView(PolicyViewConfig{Policy: ".", Options: other, StateRoot: root})
	changes, unverified = v.DriftSinceApply("nftables", &backends.State{Installed: true, Ruleset: opened}, now)
	if changes != nil || !strings.Contains(unverified, "access granted until a deadline may have expired since") {
		t.Errorf("a grant expired since: %q %q", changes, unverified)
	}

	s := &Snapshot{Backend: "nftables", Installed: true, Ruleset: opened, Drift: []string{"by hand"}, Taken: now}
	if !NewPolicyView(PolicyViewConfig{Policy: ".", Options: opts, StateRoot: root}).AddDriftSinceApply(s) ||
		len(s.Drift) != 2 || s.Drift[1] != want || s.DriftUnverified != "" {
		t.Errorf("snapshot: %q %q", s.Drift, s.DriftUnverified)
	}
	// Changed since the last apply: drift found, or that may be (status's
	// "see Drift"); an owned object changed by hand alone is not.
	s = &Snapshot{Backend: "nftables", Installed: true, Ruleset: opened, Taken: now}
	if !NewPolicyView(PolicyViewConfig{Policy: ".", Options: other, StateRoot: root}).AddDriftSinceApply(s) || s.DriftUnverified == "" || s.Drift != nil {
		t.Errorf("unverified: %q %q", s.Drift, s.DriftUnverified)
	}
	s = &Snapshot{Backend: "nftables", Installed: true, Ruleset: applied, Drift: []string{"by hand"}, Taken: now}
	if NewPolicyView(PolicyViewConfig{Policy: ".", Options: opts, StateRoot: root}).AddDriftSinceApply(s) || len(s.Drift) != 1 || s.DriftUnverified != "" {
		t.Errorf("as applied: %q %q", s.Drift, s.DriftUnverified)
	}
}

func TestMayHaveExpired(t *testing.T) {
	now := time.Now()
	a := &safeapply.Applied{Fingerprint: "fp", Backend: "nftables"}
	plain, diags := policies.Load(writePolicy(t, testPolicy), policies.Options{Trust: policies.TrustWarn})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	until, diags := policies.Load(writePolicy(t, strings.Replace(testPolicy, `comment = "office"`, `comment = "office"
    expires = "2099-01-01T00:00:00Z"`, 1)), policies.Options{Trust: policies.TrustWarn})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if grantsUntilDeadline(plain) || !grantsUntilDeadline(until) {
		t.Fatalf("grantsUntilDeadline: %v %v", grantsUntilDeadline(plain), grantsUntilDeadline(until))
	}
	if mayHaveExpired(nil, a, "iptables", now, nil) {
		t.Error("iptables keeps expired grants until the next apply")
	}
	if !mayHaveExpired(nil, a, "nftables", now, nil) {
		t.Error("a policy that does not load may have granted until a deadline")
	}
	if mayHaveExpired(nil, a, "nftables", now, plain) || !mayHaveExpired(nil, a, "nftables", now, until) {
		t.Error("by the policy's expires")
	}
	dir := stateDir(t, stateRoot(t, *a, &safeapply.Compiled{Fingerprint: "fp", Backend: "nftables", NextExpiry: now.Add(time.Hour)}))
	if mayHaveExpired(dir, a, "nftables", now, until) {
		t.Error("the compile record says the first grant ends later")
	}
	dir = stateDir(t, stateRoot(t, *a, &safeapply.Compiled{Fingerprint: "other", Backend: "nftables"}))
	if !mayHaveExpired(dir, a, "nftables", now, until) {
		t.Error("another compile's record says nothing of this apply")
	}
}

// stateDir opens the state directory under root, which exists.
func stateDir(t *testing.T, root string) *safeapply.Dir {
	t.Helper()
	dir, err := safeapply.OpenExisting(root)
	if err != nil || dir == nil {
		t.Fatalf("%v %v", dir, err)
	}
	return dir
}

// TestCheckPolicy: check --verify runs the policy's tests against the
// kernel, and a named policy the kernel does not hold is a mismatch.
func TestCheckPolicy(t *testing.T) {
	path := writePolicy(t, testPolicy)
	opts := policies.Options{Trust: policies.TrustWarn}
	none := filepath.Join(t.TempDir(), "none")
	s := &Snapshot{Backend: "nftables", Installed: true, Ruleset: compiled(t, path, opts)}
	var o CheckOptions
	v := NewPolicyView(PolicyViewConfig{Policy: path, Named: true, Options: opts, StateRoot: none})
	if err := v.CheckPolicy(s, true, &o); err != nil {
		t.Fatal(err)
	}
	if o.Mismatch != "" || o.TestsRun != 2 || len(o.FailedTests) != 1 || o.FailedTests[0] != "a stranger gets in" || o.TestsVariables != "office at its default" {
		t.Errorf("%+v", o)
	}
	o = CheckOptions{}
	s.Ruleset = &rules.Ruleset{}
	if err := v.CheckPolicy(s, false, &o); err != nil {
		t.Fatal(err)
	}
	if o.Mismatch != path || o.MismatchVariables != "office at its default" || o.FailedTests != nil || o.TestsRun != 0 {
		t.Errorf("%+v", o)
	}
	missing := filepath.Join(t.TempDir(), "nothing.hcl")
	v = NewPolicyView(PolicyViewConfig{Policy: missing, Options: opts, StateRoot: none})
	want := "the policy " + missing + " does not load: run portwarden --policy " + missing + " validate"
	if err := v.CheckPolicy(s, true, &o); err == nil || err.Error() != want {
		t.Errorf("%v, want %s", err, want)
	}
}
