package safeapply

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

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

// A grant that has run out, or runs out before the change is in, admits
// nobody: the kernel leaves it out, so the session it admitted is cut,
// and the refusal names the grant's deadline. (A saved plan applied after
// its grant ran out cut a real session; the guard only warned.)
func TestLapsedGrantCuts(t *testing.T) {
	fsys := fstest.MapFS{"p.hcl": {Data: []byte(`expose "ssh" {
  protocol = "tcp"
  ports    = [22]
  default  = "drop"
  allow {
    from    = ["198.18.0.3"]
    expires = "2099-01-01T00:00:00Z"
  }
}
`)}}
	rs := compileFS(t, fsys)
	deadline := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	sessions := []Session{{Client: netip.MustParseAddr("198.18.0.3"), Server: netip.MustParseAddrPort("198.18.0.1:22"), Found: "SSH_CONNECTION"}}
	for _, c := range []struct {
		now      time.Time
		cut      bool
		borrowed bool
	}{
		{deadline.Add(-time.Hour), false, true},
		{deadline.Add(-grantMargin / 2), true, false},
		{deadline.Add(time.Second), true, false},
	} {
		cuts, borrowed := judge(rs, sessions, c.now)
		if (len(cuts) == 1) != c.cut || (len(borrowed) == 1) != c.borrowed {
			t.Errorf("at %s: cuts %+v, borrowed %+v", c.now, cuts, borrowed)
			continue
		}
		if !c.cut {
			continue
		}
		err := LockoutError(cuts)
		want := `; the grant that admits it ends at 2099-01-01T00:00:00Z, before this change would be in`
		if !cuts[0].GrantEnds.Equal(deadline) || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("at %s: grant ends %s, error %v; want it to say %q", c.now, cuts[0].GrantEnds, err, want)
		}
	}
	if len(rs.Exposures[0].Expiring) != 1 {
		t.Fatal("judging changed the ruleset's grants")
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

// An exposure limited to one interface sees only packets arriving there:
// a session on another interface is judged by the exposures that see it,
// not by the first one in name order. Where the interface is unknown, the
// session is cut if any interface would cut it.
func TestSessionsJudgedOnTheirInterface(t *testing.T) {
	rs := compileFS(t, fstest.MapFS{"p.hcl": {Data: []byte(`expose "a-backnet" {
  protocol   = "tcp"
  ports      = [22]
  interfaces = ["back0"]
  allow {
    from = ["0.0.0.0/0", "::/0"]
  }
}

expose "ssh" {
  protocol = "tcp"
  ports    = [22]
  allow {
    from = ["198.18.0.3"]
  }
}
`)}})
	server := netip.MustParseAddrPort("198.18.0.1:22")
	on := func(iface string) Session {
		return Session{Client: netip.MustParseAddr("198.18.0.2"), Server: server, Connections: 1, Found: "kernel socket table", Interface: iface}
	}
	for _, tc := range []struct {
		iface string
		cut   bool
	}{
		{"front0", true}, // the "ssh" exposure drops it: back0's does not see it
		{"", true},       // unknown: back0 would admit it, any other interface drops it
		{"back0", false}, // where everything is admitted
	} {
		cuts := Cuts(rs, []Session{on(tc.iface)})
		if (len(cuts) > 0) != tc.cut {
			t.Errorf("session on %q: cuts %+v, want cut=%v", tc.iface, cuts, tc.cut)
			continue
		}
		if tc.cut && cuts[0].Decision.Exposure != "ssh" {
			t.Errorf("session on %q is cut by expose %q, want ssh", tc.iface, cuts[0].Decision.Exposure)
		}
	}
	if err := LockoutError(Cuts(rs, []Session{on("front0")})); err == nil || !strings.Contains(err.Error(), "198.18.0.2 to port 22 (kernel socket table, on front0)") {
		t.Errorf("the refusal does not name the interface: %v", err)
	}
}

// The usual use of interfaces: a management interface admits the admins,
// the public one only a few. An admin's session on the management
// interface is not cut for what the public exposure would do.
func TestSessionOnManagementInterfaceNotCut(t *testing.T) {
	rs := compileFS(t, fstest.MapFS{"p.hcl": {Data: []byte(`expose "mgmt" {
  protocol   = "tcp"
  ports      = [22]
  interfaces = ["mgmt0"]
  allow {
    from = ["198.18.10.0/24"]
  }
}

expose "public" {
  protocol = "tcp"
  ports    = [22]
  allow {
    from = ["198.19.0.0/16"]
  }
}
`)}})
	s := Session{Client: netip.MustParseAddr("198.18.10.5"), Server: netip.MustParseAddrPort("198.18.10.1:22"), Interface: "mgmt0"}
	if cuts := Cuts(rs, []Session{s}); len(cuts) != 0 {
		t.Fatalf("the admin's session on mgmt0 is cut: %+v", cuts)
	}
	s.Interface = "eth0"
	if cuts := Cuts(rs, []Session{s}); len(cuts) != 1 || cuts[0].Decision.Exposure != "public" {
		t.Fatalf("the same address on eth0 should be cut by public: %+v", cuts)
	}
}
