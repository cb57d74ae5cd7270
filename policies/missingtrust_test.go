package policies

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// inWindow makes create run once, between the trust check of path (a
// list file, or a policy with its variables files) and the reading of
// what the check judged: the window in which another user can create a
// name the check found missing.
func inWindow(t *testing.T, path string, create func()) {
	t.Helper()
	ran := false
	testHookTrustChecked = func(checked string) {
		if checked == path && !ran {
			ran = true
			create()
		}
	}
	t.Cleanup(func() { testHookTrustChecked = nil })
}

// plant writes file as another user would: owned by otherUID when the
// test runs as root (as the running user otherwise, which changes
// nothing the check may rely on: it judged no file at all).
func plant(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Chown(file, otherUID, otherUID)
	}
}

// everything says whether pol lets everyone in: the planted list.
func everything(pol *Policy) bool {
	for _, e := range pol.Exposes {
		for _, a := range e.Allow {
			for _, f := range a.From {
				if f.Prefix.Bits() == 0 {
					return true
				}
			}
		}
	}
	return false
}

func hasDetail(diags hcl.Diagnostics, summary string, details ...string) bool {
	for _, d := range diags {
		if d.Summary != summary {
			continue
		}
		ok := true
		for _, want := range details {
			ok = ok && strings.Contains(d.Detail, want)
		}
		if ok {
			return true
		}
	}
	return false
}

// A list file that does not exist yet, in a directory where others can
// create it (sticky or not), is refused: whoever creates it first
// decides who may reach the host (after a cron job removed it to write
// it again). And whatever appears under the name after the check is
// never read: only the file judged is.
func TestListFileAbsentThenCreated(t *testing.T) {
	for _, mode := range []FileTrust{TrustRefuse, TrustWarn} {
		_, policy, lists := listTree(t)
		list := filepath.Join(lists, "customers.txt")
		os.Chmod(lists, os.ModeSticky|0o777)
		if _, diags := Load(policy, Options{Trust: TrustRefuse}); !diags.HasErrors() {
			t.Fatal("the list file in a sticky directory was trusted")
		}
		os.Remove(list)
		inWindow(t, list, func() { plant(t, list, "0.0.0.0/0\n") })
		pol, diags := Load(policy, Options{Trust: mode})
		if everything(pol) || !diags.HasErrors() {
			t.Fatalf("mode %d: the list another user created after the check was read: %v", mode, diags)
		}
		if !hasDetail(diags, "Missing list file in an untrusted directory",
			"customers.txt does not exist, and "+lists+" (mode 1777, owner uid ",
			"everyone can create files in it: the sticky bit protects only names that exist already",
			"so someone other than root could create it and decide who may reach this host") {
			t.Errorf("mode %d: %v", mode, diags)
		}
		if mode == TrustRefuse && (len(diags) != 1 || !strings.Contains(diags[0].Detail, "Keep the list file in a directory only root can write (chmod go-w "+lists)) {
			t.Errorf("refuse: %v", diags)
		}
		if mode == TrustWarn && (diags[0].Severity != hcl.DiagWarning || !hasDetail(diags, "Cannot read list file", "customers.txt: it was not there when portwarden checked")) {
			t.Errorf("warn: %v", diags)
		}
	}
}

// In a trusted directory a missing list file is simply missing, and
// said so; if it appears after the check it is still not read, whoever
// made it: nothing judged it.
func TestListFileAbsentTrustedDirectory(t *testing.T) {
	_, policy, lists := listTree(t)
	list := filepath.Join(lists, "customers.txt")
	os.Remove(list)
	_, diags := Load(policy, Options{Trust: TrustRefuse})
	if len(diags) != 1 || !hasDetail(diags, "Cannot read list file", list+": no such file or directory. members_file is relative") {
		t.Fatalf("missing: %v", diags)
	}
	inWindow(t, list, func() { plant(t, list, "0.0.0.0/0\n") })
	pol, diags := Load(policy, Options{Trust: TrustRefuse})
	if everything(pol) || !hasDetail(diags, "Cannot read list file", list+": it was not there when portwarden checked who can write it", "run the command again") {
		t.Fatalf("created after the check: %v", diags)
	}
	// Without checks (an unprivileged run), it is read.
	testHookTrustChecked = nil
	if pol, diags := Load(policy, Options{Trust: TrustOff}); diags.HasErrors() || !everything(pol) {
		t.Fatalf("unchecked: %v", diags)
	}
}

// A missing directory on the way is a missing name like any other: in a
// directory others can create it in (sticky or not), it is refused, and
// a directory and list another user create after the check are not read.
func TestListFileMissingDirectoryOnTheWay(t *testing.T) {
	root, policy, _ := listTree(t)
	shared := filepath.Join(root, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, os.ModeSticky|0o777)
	rewrite(t, filepath.Join(policy, "policy.hcl"), "lists/customers.txt", "../shared/sub/c.txt")
	list := filepath.Join(policy, "..", "shared", "sub", "c.txt")
	inWindow(t, list, func() {
		sub := filepath.Join(shared, "sub")
		os.Mkdir(sub, 0o755)
		if os.Geteuid() == 0 {
			os.Chown(sub, otherUID, otherUID)
		}
		plant(t, filepath.Join(sub, "c.txt"), "0.0.0.0/0\n")
	})
	pol, diags := Load(policy, Options{Trust: TrustRefuse})
	if everything(pol) || !diags.HasErrors() {
		t.Fatalf("the list another user created after the check was read: %v", diags)
	}
	if !hasDetail(diags, "Missing directory on the way to the list file, in an untrusted directory",
		shared+"/sub (on the way to "+filepath.Clean(list)+") does not exist, and "+shared+" (mode 1777, owner uid ",
		"everyone can create files in it",
		"Create "+shared+"/sub first, as root (mkdir -m 0755 "+shared+"/sub), or keep the list file in a directory only root can write") {
		t.Errorf("%v", diags)
	}
	// Created by root, the directory is passed through as /tmp is.
	testHookTrustChecked = nil
	os.RemoveAll(filepath.Join(shared, "sub"))
	os.Mkdir(filepath.Join(shared, "sub"), 0o755)
	os.WriteFile(filepath.Join(shared, "sub", "c.txt"), []byte("198.51.100.0/24\n"), 0o644)
	if _, diags := Load(policy, Options{Trust: TrustRefuse}); len(diags) != 0 {
		t.Fatalf("created first: %v", diags)
	}
}

// A dangling link is followed to where its target would be: a target
// missing from a directory others can create it in is refused as well.
func TestListFileDanglingLink(t *testing.T) {
	root, _, lists := listTree(t)
	open := filepath.Join(root, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, os.ModeSticky|0o777)
	list := filepath.Join(lists, "customers.txt")
	os.Remove(list)
	if err := os.Symlink("../../open/c.txt", list); err != nil {
		t.Fatal(err)
	}
	diags, judged := checkListFile(list, Options{Trust: TrustRefuse})
	if judged != nil || !hasDetail(diags, "Missing list file in an untrusted directory",
		open+"/c.txt (on the way to "+list+", through a symbolic link) does not exist, and "+open+" (on the way to ") {
		t.Fatalf("%v", diags)
	}
}

// A variables file may sit in a sticky directory (it is named on the
// command line each time, and one another user created is theirs), so
// missing there it is simply missing; but one that appears after the
// check is not read. In a directory others can write outright, or under
// a missing directory in a sticky one, a missing variables file is
// refused.
func TestVarFileAbsentThenCreated(t *testing.T) {
	const text = "variable \"from\" {\n  type    = string\n  default = \"198.18.0.1/32\"\n}\n" +
		"expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n  allow { from = [var.from] }\n}\n"
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "p.hcl")
	os.WriteFile(p, []byte(text), 0o644)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	os.Chmod(tmp, os.ModeSticky|0o777)
	vf := filepath.Join(tmp, "vars.hcl")

	_, diags := Load(p, Options{Trust: TrustRefuse, VarFiles: []string{vf}})
	if len(diags) != 1 || !hasDetail(diags, "Cannot read variables file", vf+": no such file or directory. Check the --var-file path.") {
		t.Fatalf("missing: %v", diags)
	}
	inWindow(t, p, func() { plant(t, vf, "from = \"0.0.0.0/0\"\n") })
	pol, diags := Load(p, Options{Trust: TrustRefuse, VarFiles: []string{vf}})
	if everything(pol) || !hasDetail(diags, "Cannot read variables file", vf+": it was not there when portwarden checked who can write it") {
		t.Fatalf("created after the check: %v", diags)
	}
	testHookTrustChecked = nil
	os.Remove(vf)

	os.Chmod(tmp, 0o777)
	_, diags = Load(p, Options{Trust: TrustRefuse, VarFiles: []string{vf}})
	if len(diags) != 1 || !hasDetail(diags, "Missing variables file in an untrusted directory",
		vf+" does not exist, and "+tmp+" (mode 0777, owner uid ", "everyone can write it", "(chown root "+tmp+"; chmod go-w "+tmp+")") {
		t.Fatalf("world-writable: %v", diags)
	}

	os.Chmod(tmp, os.ModeSticky|0o777)
	deep := filepath.Join(tmp, "sub", "vars.hcl")
	_, diags = Load(p, Options{Trust: TrustRefuse, VarFiles: []string{deep}})
	if len(diags) != 1 || !hasDetail(diags, "Missing directory on the way to the variables file, in an untrusted directory",
		tmp+"/sub (on the way to "+deep+") does not exist, and "+tmp+" (mode 1777") {
		t.Fatalf("missing directory: %v", diags)
	}
	_, diags = Load(p, Options{Trust: TrustWarn, VarFiles: []string{deep}})
	if len(diags) != 2 || diags[0].Severity != hcl.DiagWarning || !strings.HasSuffix(diags[0].Detail, "; only a warning because of --strict-modes=false.") ||
		!hasDetail(diags, "Cannot read variables file", "no such file or directory") {
		t.Fatalf("missing directory, warn: %v", diags)
	}
}

// openJudged opens only the file judged; with none judged, it opens
// nothing and says what the name is now.
func TestOpenJudged(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	if _, err := openJudged(a, MaxListBytes, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	os.WriteFile(a, []byte("198.18.0.1\n"), 0o644)
	if _, err := openJudged(a, MaxListBytes, nil); err != errUnjudged {
		t.Errorf("not judged: %v", err)
	}
	var r *fileRefusal
	if _, err := openJudged("/dev/null", MaxListBytes, nil); !errors.As(err, &r) || r.Kind != "a device" {
		t.Errorf("/dev/null: %v", err)
	}
	judged, _ := os.Stat(a)
	f, err := openJudged(a, MaxListBytes, judged)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
