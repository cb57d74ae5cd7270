package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

const listPolicy = `
address_group "office" {
  members      = ["198.18.9.9"]
  members_file = "lists/office.txt"
}
address_group "all" {
  members = [address_group.office, "198.18.7.7"]
}
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = [address_group.all]
  }
  deny {
    from = [concat(address_group.office, [])]
  }
}
`

func TestMembersFile(t *testing.T) {
	list := "# office, kept by hand\n\n198.18.1.1\n  198.18.2.0/24   # second floor\n198.18.3.1-198.18.3.4\r\n2001:2::/64\n::ffff:198.18.4.4\n"
	fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(listPolicy)}, "p/lists/office.txt": {Data: []byte(list)}}
	pol, diags := LoadFS(fsys, "p/policy.hcl", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var office *AddressGroup
	for _, g := range pol.AddressGroups {
		if g.Name == "office" {
			office = g
		}
	}
	var got []string
	for _, a := range office.Members {
		s := a.Prefix.String()
		if a.Listed {
			s += fmt.Sprintf(" %s:%d,%d-%d", a.Range.Filename, a.Range.Start.Line, a.Range.Start.Column, a.Range.End.Column)
		}
		got = append(got, s)
	}
	want := []string{
		"198.18.9.9/32",
		"198.18.1.1/32 p/lists/office.txt:3,1-11",
		"198.18.2.0/24 p/lists/office.txt:4,3-16",
		"198.18.3.1/32 p/lists/office.txt:5,1-22",
		"198.18.3.2/31 p/lists/office.txt:5,1-22",
		"198.18.3.4/32 p/lists/office.txt:5,1-22",
		"2001:2::/64 p/lists/office.txt:6,1-12",
		"198.18.4.4/32 p/lists/office.txt:7,1-18",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("members:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if office.MembersFile != "p/lists/office.txt" {
		t.Errorf("MembersFile = %q", office.MembersFile)
	}
	// A plain reference keeps the list file's lines; inline members take
	// the reference's range, as they always did.
	allow := pol.Exposes[0].Allow[0].From
	if len(allow) != 9 || !allow[1].Listed || allow[1].Range.Filename != "p/lists/office.txt" || allow[1].Range.Start.Line != 3 {
		t.Errorf("allow = %+v", allow)
	}
	if allow[0].Listed || allow[0].Range.Filename != "p/policy.hcl" || allow[0].Range.Start.Line != 13 {
		t.Errorf("inline member through a reference: %+v", allow[0])
	}
	// A reference inside a function call still works, through cty.
	if deny := pol.Exposes[0].Deny[0].From; len(deny) != 8 || deny[0].Listed {
		t.Errorf("deny = %+v", deny)
	}
}

func TestMembersFileErrors(t *testing.T) {
	cases := []struct {
		name, list, want string
	}{
		{"address", "198.18.1.1\n198.18.1.300\n", `p/lists/office.txt:2,1-13: Invalid list file entry; p/lists/office.txt:2: "198.18.1.300" is not an IPv4 or IPv6 address.`},
		{"host bits", "  198.18.1.1/24 # x\n", `p/lists/office.txt:1,3-16: Invalid list file entry; p/lists/office.txt:1: "198.18.1.1/24" has host bits set after the first 24 (did you mean 198.18.1.0/24?).`},
		{"range order", "\n\n198.18.1.9-198.18.1.1\n", `p/lists/office.txt:3,1-22: Invalid list file entry; p/lists/office.txt:3: "198.18.1.9-198.18.1.1" is not a range: both ends`},
		{"range families", "198.18.1.1-2001:2::1\n", `p/lists/office.txt:1,1-21: Invalid list file entry`},
		{"cidr", "198.18.1.0/33\n", `p/lists/office.txt:1,1-14: Invalid list file entry; p/lists/office.txt:1: "198.18.1.0/33" is not an IPv4 or IPv6 prefix.`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(listPolicy)}, "p/lists/office.txt": {Data: []byte(c.list)}}
			pol, diags := LoadFS(fsys, "p/policy.hcl", Options{})
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			if got := FormatDiagnostic(diags[0]); !strings.HasPrefix(got, c.want) {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			if pol.Files["p/lists/office.txt"] == nil {
				t.Error("the list file is not in Files, so its line cannot be shown")
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(listPolicy)}}
		_, diags := LoadFS(fsys, "p/policy.hcl", Options{})
		if got := FormatDiagnostic(diags[0]); !strings.Contains(got, "p/policy.hcl:4,18-36: Cannot read list file; p/lists/office.txt:") {
			t.Errorf("got %s", got)
		}
	})
	t.Run("many errors", func(t *testing.T) {
		fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(listPolicy)}, "p/lists/office.txt": {Data: []byte(strings.Repeat("nonsense\n", 1000))}}
		_, diags := LoadFS(fsys, "p/policy.hcl", Options{})
		if len(diags) != maxListErrors+1 || !strings.Contains(diags[maxListErrors].Detail, "has 1000 invalid lines") {
			t.Errorf("%d diagnostics, last %s", len(diags), FormatDiagnostic(diags[len(diags)-1]))
		}
	})
	t.Run("no members", func(t *testing.T) {
		src := "address_group \"x\" {\n}\n"
		_, diags := LoadFS(fstest.MapFS{"p.hcl": {Data: []byte(src)}}, "p.hcl", Options{})
		if !diags.HasErrors() || diags[0].Summary != "Missing group members" {
			t.Errorf("diags = %v", diags)
		}
	})
}

// TestMembersFileFromDisk: Load resolves the list against the policy
// file's directory, as the user wrote the path, and .. works.
func TestMembersFileFromDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "policy"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(listPolicy, `"lists/office.txt"`, `"../office.txt"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "policy", "p.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "office.txt"), []byte("198.18.1.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, diags := Load(filepath.Join(dir, "policy"), Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := pol.Exposes[0].Allow[0].From[1]
	if a.Range.Filename != filepath.Join(dir, "office.txt") || a.Range.Start.Line != 1 {
		t.Errorf("member = %+v", a)
	}
}

// BenchmarkMembersFile loads a policy whose group lists a million
// sources in a list file.
func BenchmarkMembersFile(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		var list strings.Builder
		for i := range n {
			if i < 1<<17 {
				fmt.Fprintf(&list, "198.%d.%d.%d\n", 18+i>>16, i>>8&255, i&255)
			} else {
				fmt.Fprintf(&list, "2001:2::%x:%x\n", i>>16, i&0xffff)
			}
			if i%1000 == 0 {
				list.WriteString("# a comment\n")
			}
		}
		policy := strings.Replace(listPolicy, "concat(address_group.office, [])", `"198.18.7.7"`, 1)
		fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(policy)}, "p/lists/office.txt": {Data: []byte(list.String())}}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				if _, diags := LoadFS(fsys, "p/policy.hcl", Options{}); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}
