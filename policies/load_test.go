package policies

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadExample(t *testing.T) {
	pol, diags := Load("../examples/port27", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(pol.Exposes) != 1 || len(pol.Tests) != 7 {
		t.Fatalf("exposes %d tests %d", len(pol.Exposes), len(pol.Tests))
	}
	e := pol.Exposes[0]
	if e.Protocol != "tcp" || e.Ports[0] != (PortRange{27, 27}) || !e.Log || !e.Loopback || e.Default != "drop" {
		t.Errorf("expose = %+v", e)
	}
	var got []string
	for _, a := range e.Allow[0].From {
		got = append(got, a.Prefix.String())
	}
	want := []string{"198.18.1.7/32", "2001:2:0:1::7/128", "198.18.20.10/32", "2001:2:0:20::/64", "198.18.10.0/24"}
	if len(got) != len(want) {
		t.Fatalf("allow = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allow[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if e.Allow[0].From[0].Range.Filename != "../examples/port27/policy.hcl" || e.Allow[0].From[0].Range.Start.Line == 0 {
		t.Errorf("range = %v", e.Allow[0].From[0].Range)
	}
	if pol.Tests[0].From != netip.MustParseAddr("198.18.1.7") || pol.Tests[0].To != "nscp" {
		t.Errorf("test = %+v", pol.Tests[0])
	}
}

const nativeSrc = `
variable "office" {
  type    = list(string)
  default = ["198.18.10.0/24"]
}
variable "port" {
  type    = number
  default = 27
}
locals {
  extra = concat(["198.18.5.5"], [cidrsubnet("198.18.128.0/17", 7, 3)])
}
address_group "ops" {
  members = [local.extra, var.office]
}
expose "nscp" {
  protocol = "tcp"
  ports    = [var.port, "8000-8010"]
  default  = "reject"
  allow {
    from = [address_group.ops]
  }
}
`

const jsonSrc = `{
  "variable": {
    "office": {"type": "list(string)", "default": ["198.18.10.0/24"]},
    "port": {"type": "number", "default": 27}
  },
  "locals": {"extra": "${concat([\"198.18.5.5\"], [cidrsubnet(\"198.18.128.0/17\", 7, 3)])}"},
  "address_group": {"ops": {"members": ["${local.extra}", "${var.office}"]}},
  "expose": {"nscp": {
    "protocol": "tcp", "ports": ["${var.port}", "8000-8010"], "default": "reject",
    "allow": {"from": ["${address_group.ops}"]}
  }}
}`

func allowList(t *testing.T, p *Policy) []string {
	t.Helper()
	if len(p.Exposes) != 1 || len(p.Exposes[0].Allow) != 1 {
		t.Fatalf("policy = %+v", p)
	}
	var out []string
	for _, a := range p.Exposes[0].Allow[0].From {
		out = append(out, a.Prefix.String())
	}
	return out
}

func TestNativeAndJSONAgree(t *testing.T) {
	fsys := fstest.MapFS{"native/p.hcl": {Data: []byte(nativeSrc)}, "json/p.hcl.json": {Data: []byte(jsonSrc)}}
	n, diags := LoadFS(fsys, "native", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	j, diags := LoadFS(fsys, "json", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a, b := allowList(t, n), allowList(t, j)
	if strings.Join(a, ",") != strings.Join(b, ",") || strings.Join(a, ",") != "198.18.5.5/32,198.18.131.0/24,198.18.10.0/24" {
		t.Errorf("native %v, json %v", a, b)
	}
	if n.Exposes[0].Ports[0] != (PortRange{27, 27}) || n.Exposes[0].Ports[1] != (PortRange{8000, 8010}) || j.Exposes[0].Ports[1] != (PortRange{8000, 8010}) {
		t.Errorf("ports %v %v", n.Exposes[0].Ports, j.Exposes[0].Ports)
	}
}

func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(nativeSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	varFile := filepath.Join(dir, "vars.hcl")
	if err := os.WriteFile(varFile, []byte(`office = ["198.18.30.0/24"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	office := func(opts Options) string {
		p, diags := Load(filepath.Join(dir, "p.hcl"), opts)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		l := allowList(t, p)
		return l[len(l)-1]
	}
	if got := office(Options{}); got != "198.18.10.0/24" {
		t.Errorf("default: %s", got)
	}
	if got := office(Options{Vars: map[string]string{"office": `["198.18.20.0/24"]`}}); got != "198.18.20.0/24" {
		t.Errorf("--var: %s", got)
	}
	if got := office(Options{Vars: map[string]string{"office": `["198.18.20.0/24"]`}, VarFiles: []string{varFile}}); got != "198.18.30.0/24" {
		t.Errorf("--var-file beats --var: %s", got)
	}
	env := []string{"PORTWARDEN_VAR_office=[\"198.18.40.0/24\"]"}
	if got := office(Options{VarFiles: []string{varFile}, Environ: env}); got != "198.18.40.0/24" {
		t.Errorf("environment beats --var-file: %s", got)
	}
	_, diags := Load(filepath.Join(dir, "p.hcl"), Options{Vars: map[string]string{"port": "many"}})
	if !diags.HasErrors() {
		t.Error("a non-number --var for a number variable was accepted")
	}
}

func TestFormat(t *testing.T) {
	out, diags := Format([]byte("service \"a\" {\nprotocol=\"tcp\"\n  ports = [27]\n}\n"), "a.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if want := "service \"a\" {\n  protocol = \"tcp\"\n  ports    = [27]\n}\n"; string(out) != want {
		t.Errorf("got %q", out)
	}
	if _, diags := Format([]byte("service {"), "bad.hcl"); !diags.HasErrors() {
		t.Error("syntax error not reported")
	}
}
