package safeapply

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

// Cuts decides sessions by the prefix sets and names the deciding block
// only of a session it cuts: an allowed session, listed in a list file,
// never makes Decide index every source.
func TestCutsNameTheDecidingBlock(t *testing.T) {
	fsys := fstest.MapFS{
		"p.hcl": {Data: []byte(`address_group "admins" {
  members_file = "admins.txt"
}

expose "ssh" {
  protocol = "tcp"
  ports    = [22]
  allow {
    from = [address_group.admins]
  }
  deny {
    from = ["198.18.0.9"]
  }
}
`)},
		"admins.txt": {Data: []byte("198.18.0.2\n198.18.0.9\n2001:2::2\n")},
	}
	rs := compileFS(t, fsys)
	server := netip.MustParseAddrPort("198.18.0.1:22")
	session := func(client string) Session {
		return Session{Client: netip.MustParseAddr(client), Server: server, Connections: 1, Found: "kernel socket table"}
	}
	cuts := Cuts(rs, []Session{session("198.18.0.2"), session("198.18.0.3"), session("198.18.0.9"), session("2001:2::2")})
	if len(cuts) != 2 || cuts[0].Session.Client.String() != "198.18.0.3" || cuts[1].Session.Client.String() != "198.18.0.9" {
		t.Fatalf("cuts = %+v, want 198.18.0.3 and 198.18.0.9", cuts)
	}
	if o := cuts[0].Decision.Origin; o == nil || o.Kind != rules.OriginDefault {
		t.Errorf("198.18.0.3 is refused by %+v, want the default", o)
	}
	if o := cuts[1].Decision.Origin; o == nil || o.Kind != rules.OriginDeny {
		t.Errorf("198.18.0.9 is refused by %+v, want the deny block", o)
	}
	if len(rs.Exposures[0].Origins) == 0 {
		t.Error("Cuts dropped the ruleset's origins")
	}
	if Cuts(rs, nil) != nil {
		t.Error("no session, yet cuts")
	}
}

// A session only a grant admits is not cut, but the person applying hears
// when the kernel will cut it.
func TestBorrowedSessionsWarned(t *testing.T) {
	fsys := fstest.MapFS{"p.hcl": {Data: []byte(`expose "ssh" {
  protocol = "tcp"
  ports    = [22]
  allow {
    from = ["198.18.0.2"]
  }
  allow {
    from    = ["198.18.0.3"]
    comment = "the vendor"
    expires = "2099-01-01T00:00:00Z"
  }
}
`)}}
	rs := compileFS(t, fsys)
	server := netip.MustParseAddrPort("198.18.0.1:22")
	sessions := []Session{{Client: netip.MustParseAddr("198.18.0.2"), Server: server}, {Client: netip.MustParseAddr("198.18.0.3"), Server: server}}
	if cuts := Cuts(rs, sessions); len(cuts) != 0 {
		t.Fatalf("cuts %+v", cuts)
	}
	w := BorrowedWarnings(Borrowed(rs, sessions))
	want := `the SSH session from 198.18.0.3 to port 22 is admitted only until 2099-01-01T00:00:00Z by expose "ssh" (allow block`
	if len(w) != 1 || !strings.HasPrefix(w[0], want) || !strings.Contains(w[0], "the kernel cuts it then") {
		t.Fatalf("warnings %q, want one starting %q", w, want)
	}
}

// compileFS compiles the policy p.hcl of fsys.
func compileFS(t *testing.T, fsys fstest.MapFS) *rules.Ruleset {
	t.Helper()
	pol, diags := policies.LoadFS(fsys, "p.hcl", policies.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
