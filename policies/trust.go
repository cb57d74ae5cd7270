package policies

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// FileTrust says what Load does with a policy file, policy directory,
// list file or variables file that someone other than root or the running
// user could have written: what it says decides who may reach the host, so
// as root it is trusted only as far as sshd trusts authorized_keys under
// StrictModes.
type FileTrust int

const (
	// TrustAuto refuses untrusted files when running as root (euid 0),
	// and checks nothing otherwise: an unprivileged run cannot change the
	// firewall.
	TrustAuto FileTrust = iota
	// TrustRefuse refuses untrusted files whoever runs.
	TrustRefuse
	// TrustWarn only warns (--strict-modes=false).
	TrustWarn
	// TrustOff checks nothing.
	TrustOff
)

// checkTrust examines the files Load is about to read: the policy path
// (a file and the directory it is in, or a directory and every policy
// file in it) and the variables files.
func checkTrust(p string, opts Options) hcl.Diagnostics {
	mode := effectiveTrust(opts)
	if mode == TrustOff {
		return nil
	}
	var diags hcl.Diagnostics
	check := func(path, what string, dirOfFile bool) {
		if d := trustOf(path, what, dirOfFile, mode); d != nil {
			diags = append(diags, d)
		}
	}
	if info, err := os.Stat(p); err == nil && info.IsDir() {
		check(p, "policy directory", false)
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if !e.IsDir() && isPolicyFile(e.Name()) {
				check(filepath.Join(p, e.Name()), "policy file", false)
			}
		}
	} else if err == nil {
		check(p, "policy file", false)
		check(filepath.Dir(p), "directory of the policy file", true)
	}
	for _, vf := range opts.VarFiles {
		check(vf, "variables file", false)
		check(filepath.Dir(vf), "directory of the variables file", true)
	}
	return diags
}

// CheckListFile applies the same trust to a list file (one address a
// line) before it is read.
func CheckListFile(path string, opts Options) *hcl.Diagnostic {
	mode := effectiveTrust(opts)
	if mode == TrustOff {
		return nil
	}
	return trustOf(path, "list file", false, mode)
}

// effectiveTrust resolves TrustAuto: only root is refused files others can
// write (as sshd's StrictModes); anyone else checks nothing.
func effectiveTrust(opts Options) FileTrust {
	if opts.Trust != TrustAuto {
		return opts.Trust
	}
	if os.Geteuid() != 0 {
		return TrustOff
	}
	return TrustRefuse
}

// trustOf returns a diagnostic when path is writable by someone other than
// root or the running user: owned by another user, or writable by group
// (other than root's) or others. A directory that only holds the one file
// read may be world-writable with the sticky bit (/tmp): nobody else can
// then replace that file.
func trustOf(path, what string, dirOfFile bool, mode FileTrust) *hcl.Diagnostic {
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() && !info.IsDir() {
		return nil // reading it reports the problem (a device, a pipe)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	perm := info.Mode()
	var why string
	switch {
	case !trustedOwner(st.Uid):
		why = fmt.Sprintf("it belongs to uid %d, neither root nor the user running portwarden", st.Uid)
	case perm&0o002 != 0 && !(dirOfFile && perm&fs.ModeSticky != 0):
		why = "everyone can write it"
	case perm&0o020 != 0 && st.Gid != 0:
		why = fmt.Sprintf("group %d can write it", st.Gid)
	default:
		return nil
	}
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Untrusted " + what,
		Detail: fmt.Sprintf("%s (mode %04o, owner uid %d): %s, so someone other than root could decide who may reach this host. "+
			"Make it owned by root and writable only by its owner (chown root %s; chmod go-w %s), or pass --strict-modes=false to only warn.",
			path, st.Mode&0o7777, st.Uid, why, path, path),
	}
	if mode == TrustWarn {
		d.Severity = hcl.DiagWarning
		d.Detail = fmt.Sprintf("%s (mode %04o, owner uid %d): %s, so someone other than root could decide who may reach this host; read anyway because of --strict-modes=false.",
			path, st.Mode&0o7777, st.Uid, why)
	}
	return d
}

// trustedOwner: root, the running user, or the user who ran sudo.
func trustedOwner(uid uint32) bool {
	if uid == 0 || int(uid) == os.Geteuid() || int(uid) == os.Getuid() {
		return true
	}
	if s, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && s == int(uid) {
		return true
	}
	return false
}
