package policies

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const expiresPolicy = `
address_group "vendor" {
  members_file = "vendor.txt"
}
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = ["198.18.1.1"]
  }
  allow {
    from    = ["198.18.2.2"]
    comment = "the vendor, until Friday"
    expires = "2026-12-04T17:00:00+01:00"
  }
  allow {
    from    = ["198.18.3.3"]
    expires = "2026-11-01T00:00:00Z"
  }
  allow {
    from = [address_group.vendor]
  }
}
`

func TestExpires(t *testing.T) {
	list := "198.18.4.4 expires=2026-12-10T00:00:00Z\n198.18.5.0/24\texpires=2026-01-01T00:00:00Z # long gone\n198.18.6.6 - 198.18.6.7 expires=2027-01-01T00:00:00Z\n"
	fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(expiresPolicy)}, "p/vendor.txt": {Data: []byte(list)}}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	pol, diags := LoadFS(fsys, "p/policy.hcl", Options{Now: now})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !pol.LoadedAt.Equal(now) {
		t.Errorf("LoadedAt = %v", pol.LoadedAt)
	}
	allow := pol.Exposes[0].Allow
	if got := allow[1].Expires; !got.Equal(time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("block expires = %v, want 16:00 UTC", got)
	}
	var lines []string
	for _, a := range allow[3].From {
		lines = append(lines, a.Prefix.String()+" "+a.Expires.Format(time.RFC3339))
	}
	want := "198.18.4.4/32 2026-12-10T00:00:00Z,198.18.5.0/24 2026-01-01T00:00:00Z,198.18.6.6/31 2027-01-01T00:00:00Z"
	if strings.Join(lines, ",") != want {
		t.Errorf("list lines:\n got %s\nwant %s", strings.Join(lines, ","), want)
	}
	var warnings []string
	for _, d := range diags {
		warnings = append(warnings, d.Summary+": "+d.Detail)
	}
	all := strings.Join(warnings, "\n")
	for _, w := range []string{"Expired allow block: This allow block expired at 2026-11-01T00:00:00Z", "Expired list file lines: 1 source(s) of this allow block expired, the first 198.18.5.0/24 at p/vendor.txt:2"} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
}

func TestExpiresErrors(t *testing.T) {
	for _, tc := range []struct{ name, policy, list, want string }{
		{"bad time", `expose "x" {
  protocol = "tcp"
  ports = [27]
  allow {
    from = ["198.18.1.1"]
    expires = "next friday"
  }
}`, "", `"next friday" is not an RFC 3339 time`},
		{"deny block", `expose "x" {
  protocol = "tcp"
  ports = [27]
  deny {
    from = ["198.18.1.1"]
    expires = "2030-01-01T00:00:00Z"
  }
}`, "", "Only allow blocks take expires"},
		{"expiring line in deny", `address_group "g" {
  members_file = "l.txt"
}
expose "x" {
  protocol = "tcp"
  ports = [27]
  deny {
    from = [address_group.g]
  }
}`, "198.18.1.1 expires=2030-01-01T00:00:00Z\n", "only allowed sources can expire"},
		{"computed", `address_group "g" {
  members_file = "l.txt"
}
expose "x" {
  protocol = "tcp"
  ports = [27]
  allow {
    from = [concat(address_group.g, [])]
  }
}`, "198.18.1.1 expires=2030-01-01T00:00:00Z\n", "their deadlines would be lost"},
		{"bad line", `address_group "g" {
  members_file = "l.txt"
}
expose "x" {
  protocol = "tcp"
  ports = [27]
  allow {
    from = [address_group.g]
  }
}`, "198.18.1.1 expires=friday\n", "l.txt:1: \"198.18.1.1 expires=friday\" has an expires= that is not an RFC 3339 time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"p/policy.hcl": {Data: []byte(tc.policy)}, "p/l.txt": {Data: []byte(tc.list)}}
			_, diags := LoadFS(fsys, "p/policy.hcl", Options{})
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, diags)
			}
		})
	}
}
