package pathtrust

import (
	"io/fs"
	"os"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for p, want := range map[string][]string{
		"/":                  nil,
		"":                   nil,
		"/run/portwarden":    {"run", "portwarden"},
		"//a/./b//../c/":     {"a", "b", "..", "c"},
		"rel/./x":            {"rel", "x"},
		".":                  nil,
		"../up":              {"..", "up"},
		"/etc/pw/policy.hcl": {"etc", "pw", "policy.hcl"},
	} {
		if got := Split(p); !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestOtherWriters(t *testing.T) {
	for _, c := range []struct {
		perm fs.FileMode
		gid  uint32
		want string
	}{
		{0o755, 5, ""},
		{0o700, 5, ""},
		{0o775, 5, "group 5"},
		{0o770, 0, "group 0"},
		{0o777, 5, "everyone"},
		{0o757, 5, "everyone"},
		{0o777 | fs.ModeSticky, 0, "everyone"},
	} {
		if got := OtherWriters(c.perm, c.gid); got != c.want {
			t.Errorf("OtherWriters(%v, %d) = %q, want %q", c.perm, c.gid, got, c.want)
		}
	}
}

func TestRootOrSelf(t *testing.T) {
	if !RootOrSelf(0) || !RootOrSelf(uint32(os.Geteuid())) {
		t.Error("root or the effective user not trusted")
	}
	if os.Geteuid() != 65534 && RootOrSelf(65534) {
		t.Error("nobody trusted")
	}
}
