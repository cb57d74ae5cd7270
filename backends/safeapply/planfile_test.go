package safeapply

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// planState points the state root at a fresh directory of the test's.
func planState(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Setenv("PORTWARDEN_STATE_DIR", root)
	return root
}

func samplePlan() *backends.Plan {
	e := rules.Exposure{Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}},
		Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"))}
	desired := &rules.Ruleset{Exposures: []rules.Exposure{e}}
	return &backends.Plan{Backend: "nftables", Current: &backends.State{Ruleset: &rules.Ruleset{}}, Desired: desired,
		Diff: rules.Compare(&rules.Ruleset{}, desired), Created: time.Now().UTC()}
}

// savedPlan saves a sample plan in dir and returns its path.
func savedPlan(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "nscp.plan")
	if err := SavePlan(path, samplePlan(), "sha256:0000", filepath.Join(dir, "policy.hcl")); err != nil {
		t.Fatal(err)
	}
	return path
}

// rewritePlan changes a saved plan with edit and signs it again with the
// host's key, as portwarden would have written it: only the checks of
// what it is bound to can refuse it.
func rewritePlan(t *testing.T, path string, edit func(*planFile)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f planFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	edit(&f)
	key, err := planKey(false)
	if err != nil {
		t.Fatal(err)
	}
	f.Signature = f.sign(key)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, target error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error saying %q", words)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestSavedPlanRoundTrip(t *testing.T) {
	dir := planState(t)
	path := savedPlan(t, dir)
	saved, err := LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Backend != "nftables" || saved.WrittenBy == nil || *saved.WrittenBy != *thisBinary() || saved.NetNSCookie == 0 || saved.BootID != bootID() {
		t.Errorf("read back %+v, written by %v", saved, saved.WrittenBy)
	}
}

// A plan is bound to the network namespace and the boot it was made for:
// applied in another namespace whose owned state is the same (both empty,
// say) it would not be stale, so the binding is what refuses it.
func TestSavedPlanBoundToNamespaceAndBoot(t *testing.T) {
	dir := planState(t)
	path := savedPlan(t, dir)
	saved, err := LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	rewritePlan(t, path, func(f *planFile) { f.NetNSCookie++ })
	_, err = LoadPlan(path)
	wantErr(t, err, ErrPlanTampered, "this plan ("+path+") was made for another network namespace", "make a new plan in this one", "nothing was applied")
	wantErr(t, err, ErrPlanNotHere)
	if shown, err := ReadPlan(path); err != nil || shown.NotHere == nil || shown.NotHere.Reason != "netns" {
		t.Errorf("show of another namespace's plan: %v, %+v", err, shown)
	}

	rewritePlan(t, path, func(f *planFile) { f.NetNSCookie, f.BootID = saved.NetNSCookie, "0a9b7c5e-0000-4000-8000-000000000000" })
	_, err = LoadPlan(path)
	wantErr(t, err, ErrPlanNotHere, "was made before the kernel last booted", "make a new plan")

	// The binding is signed: edited without the key, the plan is tampered.
	rewritePlan(t, path, func(f *planFile) { f.BootID = saved.BootID })
	if _, err := LoadPlan(path); err != nil {
		t.Fatalf("back as it was made: %v", err)
	}
	data, _ := os.ReadFile(path)
	edited := strings.Replace(string(data), `"boot_id": "`+saved.BootID, `"boot_id": "`+saved.BootID[:len(saved.BootID)-1]+"x", 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPlan(path)
	wantErr(t, err, ErrPlanTampered, "does not carry the signature")
}

// A plan another portwarden build wrote is refused, even signed on this
// host: it may read the same file as other rules. show still shows it.
func TestSavedPlanFromAnotherBinary(t *testing.T) {
	dir := planState(t)
	this := thisBinary()
	older := &Binary{Version: "v0.9.0", Commit: "0123456789abcdef", Build: "older"}
	thisBinary = func() *Binary { return older }
	path := savedPlan(t, dir)
	thisBinary = func() *Binary { return this }
	t.Cleanup(func() { thisBinary = func() *Binary { return this } })

	_, err := LoadPlan(path)
	wantErr(t, err, ErrPlanNotHere, "this plan ("+path+") was written by portwarden v0.9.0 (commit 0123456789abcdef); this is portwarden "+this.Version,
		"make a new plan with this binary")
	wantErr(t, err, ErrPlanTampered)
	shown, err := ReadPlan(path)
	if err != nil || shown.NotHere == nil || shown.NotHere.Reason != "binary" || shown.Plan == nil {
		t.Fatalf("show of another build's plan: %v, %+v", err, shown)
	}

	// Same version and commit, another build (two "dev" builds): the
	// build tells them apart.
	twin := *this
	twin.Build = "another"
	thisBinary = func() *Binary { return &twin }
	path = savedPlan(t, dir)
	thisBinary = func() *Binary { return this }
	_, err = LoadPlan(path)
	wantErr(t, err, ErrPlanNotHere, "was written by portwarden "+this.Version+" (commit "+this.Commit+", build another)", "build "+this.Build)

	// Edited to name this binary: the signature no longer holds.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"build": "another"`, `"build": `+jsonString(this.Build), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPlan(path)
	wantErr(t, err, ErrPlanTampered, "does not carry the signature")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A plan written before plans named their binary (format 1 all the same)
// is refused with the same kind of message; show still shows it, its old
// signature checked.
func TestSavedPlanFromBeforeBinaryRefused(t *testing.T) {
	dir := planState(t)
	path := savedPlan(t, dir)
	// As the binaries before wrote it: no binary, namespace or boot, signed
	// over the plan and the policy alone.
	rewritePlan(t, path, func(f *planFile) { f.WrittenBy, f.NetNSCookie, f.BootID = nil, 0, "" })
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "written_by") {
		t.Fatal("the old plan names its binary")
	}
	_, err := LoadPlan(path)
	wantErr(t, err, ErrPlanNotHere, "was written by a portwarden from before plans named the binary that wrote them; this is portwarden ", "make a new plan with this binary")
	shown, err := ReadPlan(path)
	if err != nil || shown.NotHere == nil || shown.NotHere.Reason != "binary" || shown.Plan == nil {
		t.Fatalf("show of an old plan: %v, %+v", err, shown)
	}
}

// A plan cut short or garbled is a tampered plan (tampered_plan in JSON),
// a file that is no plan at all is said to be none.
func TestDamagedPlanIsTampered(t *testing.T) {
	dir := planState(t)
	path := savedPlan(t, dir)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string][]byte{
		"cut at 30":  data[:30],
		"cut at 200": data[:200],
		"cut at 500": data[:500],
		"cut at end": data[:len(data)-3],
		"garbled":    []byte(strings.Replace(string(data), `"desired": {`, `"desired": {{`, 1)),
		"no plan":    []byte(`{"format_version": 1, "plan_digest": "sha256:00", "signature": "hmac-sha256:00"}`),
	}
	for name, d := range damaged {
		p := filepath.Join(dir, "damaged.plan")
		if err := os.WriteFile(p, d, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPlan(p)
		if !errors.Is(err, ErrPlanTampered) || !strings.Contains(err.Error(), "is not a portwarden plan any more") {
			t.Errorf("%s: %v, want ErrPlanTampered saying it is not a plan any more", name, err)
		}
	}
	notPlans := map[string]string{
		"policy":    "expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n}\n",
		"plan JSON": `{"format_version": 1, "backend": "nftables", "current": {}, "desired": {}}`,
		"empty":     "",
		"cut early": `{"form`,
		"other":     `{"name": "x"}`,
	}
	for name, d := range notPlans {
		p := filepath.Join(dir, "other.plan")
		if err := os.WriteFile(p, []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPlan(p)
		if err == nil || errors.Is(err, ErrPlanTampered) || !strings.Contains(err.Error(), p+" is not a portwarden plan (") {
			t.Errorf("%s: %v, want \"is not a portwarden plan\", not tampered", name, err)
		}
	}
}

// Only a regular file is read as a plan, and only up to MaxPlanBytes:
// /dev/zero, a FIFO (whose open would wait for a writer) and links to
// them are refused before anything is read.
func TestPlanPathMustBeRegularFile(t *testing.T) {
	dir := planState(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.plan")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{"/dev/zero": "a character device", zero: "a character device, through the symbolic link to /dev/zero",
		fifo: "a FIFO", dir: "a directory"} {
		done := make(chan error, 1)
		go func() { _, err := LoadPlan(path); done <- err }()
		select {
		case err := <-done:
			wantErr(t, err, nil, path+" is not a regular file ("+kind+")", "nothing was read")
			if errors.Is(err, ErrPlanTampered) {
				t.Errorf("%s: %v is not tampered", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("LoadPlan(%s) still reading after 5s", path)
		}
	}
	big := filepath.Join(dir, "big.plan")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxPlanBytes + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	_, err = LoadPlan(big)
	wantErr(t, err, nil, "is 1073741825 bytes, more than a saved plan may be (1024 MiB")
}

// The state root is trusted only when nobody but root or the effective
// user could have written it, or the key, or a directory on the way to
// it: whoever owns it could otherwise sign plans (and write journals and
// caches) that root's portwarden then applies.
func TestStateRootMustBeTrusted(t *testing.T) {
	netnstest.RequireRoot(t)
	const nobody = 65534
	base := t.TempDir()
	dir := func(path string, mode os.FileMode, uid int) string {
		t.Helper()
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, uid, -1); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The repro: a state root nobody owns, with a key nobody knows and a
	// plan signed with it. (Made by root here and given to nobody, which
	// is the same to the check.)
	evil := dir(filepath.Join(base, "x", "evil"), 0o755, 0)
	t.Setenv("PORTWARDEN_STATE_DIR", evil)
	forged := savedPlan(t, base)
	for _, name := range []string{evil, filepath.Join(evil, "plan.key")} {
		if err := os.Chown(name, nobody, -1); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "the state directory "+evil+" (owner uid 65534, mode 0755) is not safe: it belongs to uid 65534",
		"chown 0 "+evil, "PORTWARDEN_STATE_DIR")
	_, err = Open("")
	wantErr(t, err, ErrUntrustedState, evil)
	_, err = OpenExisting("")
	wantErr(t, err, ErrUntrustedState, evil)
	if err := SavePlan(filepath.Join(base, "new.plan"), samplePlan(), "sha256:00", "p.hcl"); err == nil {
		t.Error("a plan was signed with the key of an untrusted state root")
	}

	// Owned, but the group may write it.
	dir(evil, 0o770, 0)
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "(owner uid 0, mode 0770) is not safe: group 0 can write it", "chmod go-w "+evil)

	// Owned and private, but the key is someone else's, or readable.
	dir(evil, 0o700, 0)
	key := filepath.Join(evil, "plan.key")
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "the plan-signing key "+key+" (owner uid 65534, mode 0600) is not safe: it belongs to uid 65534")
	os.Chown(key, 0, -1)
	os.Chmod(key, 0o644)
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "(owner uid 0, mode 0644) is not safe: its group or everyone can read or write it", "rm "+key)
	os.Chmod(key, 0o600)
	if _, err := LoadPlan(forged); err != nil {
		t.Fatalf("all root's again: %v", err)
	}

	// A directory on the way: another owner, or writable by others
	// without the sticky bit, is refused; sticky (as /tmp) is fine.
	x := filepath.Join(base, "x")
	dir(x, 0o755, nobody)
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, x+" (owner uid 65534, mode 0755), a directory on the way to the state directory "+evil+", is not safe", "chown 0 "+x)
	dir(x, 0o777, 0)
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "everyone can write it, and it is not sticky")
	dir(x, 0o777|os.ModeSticky, 0)
	if _, err := LoadPlan(forged); err != nil {
		t.Errorf("below a sticky directory: %v", err)
	}
	if _, err := Open(""); err != nil {
		t.Errorf("Open below a sticky directory: %v", err)
	}

	// A link to the root, in the sticky directory: its owner could point
	// it elsewhere, so it must be root's.
	link := filepath.Join(x, "link")
	if err := os.Symlink(evil, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTWARDEN_STATE_DIR", link)
	if _, err := LoadPlan(forged); err != nil {
		t.Errorf("through root's link: %v", err)
	}
	os.Lchown(link, nobody, -1)
	_, err = LoadPlan(forged)
	wantErr(t, err, ErrUntrustedState, "the symbolic link "+link+" (owner uid 65534)", "chown -h 0 "+link)

	// A root that does not exist yet is made private, below trusted
	// directories only.
	fresh := filepath.Join(x, "fresh", "state")
	t.Setenv("PORTWARDEN_STATE_DIR", fresh)
	if err := SavePlan(filepath.Join(base, "fresh.plan"), samplePlan(), "sha256:00", "p.hcl"); err != nil {
		t.Fatalf("a new state root: %v", err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the new state root: %v, %v", fi.Mode(), err)
	}
	if _, err := LoadPlan(filepath.Join(base, "fresh.plan")); err != nil {
		t.Error(err)
	}
	dir(filepath.Join(x, "open"), 0o777, 0)
	t.Setenv("PORTWARDEN_STATE_DIR", filepath.Join(x, "open", "state"))
	_, err = Open("")
	wantErr(t, err, ErrUntrustedState, "everyone can write it, and it is not sticky")
	if _, err := os.Stat(filepath.Join(x, "open", "state")); err == nil {
		t.Error("Open made a state root below a directory everyone can write")
	}

	// A namespace directory below a trusted root is checked too.
	t.Setenv("PORTWARDEN_STATE_DIR", evil)
	d, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d.Path, 0o777)
	_, err = Open("")
	wantErr(t, err, ErrUntrustedState, d.Path, "everyone can write it")
}

// plan --out replaces a file at the path (0600 even over a readable one),
// and refuses a symbolic link (its target stays as it was: /dev/stdout is
// one), a device, or a directory that does not exist.
func TestSavePlanReplacesWhatIsThere(t *testing.T) {
	dir := planState(t)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.plan")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.plan")
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SavePlan(old, samplePlan(), "sha256:0000", filepath.Join(dir, "policy.hcl")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(old); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s after plan --out: %v %v, want a regular file 0600", old, fi.Mode(), err)
	}
	if _, err := LoadPlan(old); err != nil {
		t.Error(err)
	}
	for path, want := range map[string]string{
		link:                            "it is a symbolic link, not a regular file",
		"/dev/null":                     "it is a character device, not a regular file",
		filepath.Join(dir, "no/x.plan"): "the directory " + filepath.Join(dir, "no") + " does not exist",
	} {
		err := SavePlan(path, samplePlan(), "sha256:0000", filepath.Join(dir, "policy.hcl"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("plan --out %s: %v, want %q", path, err, want)
		}
	}
	if data, _ := os.ReadFile(target); string(data) != "keep" {
		t.Errorf("the link's target was written: %q", data)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
}
