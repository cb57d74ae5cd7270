package policies

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/portwarden/portwarden/internal/pathtrust"
)

// FileTrust says what Load does with a policy file, policy directory,
// list file or variables file that someone other than root or the running
// user could have written, or could replace: what it says decides who may
// reach the host, so as root it is trusted only as far as sshd trusts
// authorized_keys under StrictModes.
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
// (a file, or a directory and every policy file in it) and the variables
// files, each with every directory and symbolic link on its way from /.
// It also returns, for each variables file, the regular file its walk
// reached (nil: none), which is the only file that may then be read under
// that name; the map is nil when nothing was checked (TrustOff).
func checkTrust(p string, opts Options) (hcl.Diagnostics, map[string]fs.FileInfo) {
	mode := effectiveTrust(opts)
	if mode == TrustOff {
		return nil, nil
	}
	w := &trustWalk{mode: mode, seen: map[string]bool{}}
	if info, err := os.Stat(p); err == nil && info.IsDir() {
		w.check(p, "policy directory", false)
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if !e.IsDir() && IsPolicyFile(e.Name()) {
				// Not sticky: anyone could add a file to the directory.
				w.check(filepath.Join(p, e.Name()), "policy file", false)
			}
		}
	} else if err == nil {
		w.check(p, "policy file", true)
	}
	varFiles := make(map[string]fs.FileInfo, len(opts.VarFiles))
	for _, vf := range opts.VarFiles {
		varFiles[vf] = w.check(vf, "variables file", true)
	}
	return w.diags, varFiles
}

// CheckListFile applies the same trust to a list file (one address a
// line) before it is read; it returns the first of its diagnostics (see
// checkListFile for all of them).
func CheckListFile(path string, opts Options) *hcl.Diagnostic {
	diags, _ := checkListFile(path, opts)
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return d
		}
	}
	if len(diags) > 0 {
		return diags[0]
	}
	return nil
}

// checkListFile judges a list file, every directory from / to it and
// every symbolic link followed on the way. It also returns what the file
// it reached was (nil: none, or nothing checked), so that the reader can
// make sure it opens that same file, and opens none if the walk reached
// none (openJudged).
//
// Unlike a single policy file, a list file may not sit in a directory
// others can write even with the sticky bit (/tmp): the sticky bit stops
// others from removing or renaming what is there, not from creating a
// name a policy reads before its owner does (after a cron job removed it
// to write it again, or before it was ever written), and on a host
// without fs.protected_hardlinks they can create it as a hard link to any
// root-owned file, which no owner check can tell from the real one.
func checkListFile(path string, opts Options) (hcl.Diagnostics, fs.FileInfo) {
	mode := effectiveTrust(opts)
	if mode == TrustOff {
		return nil, nil
	}
	w := &trustWalk{mode: mode, seen: map[string]bool{}}
	reached := w.check(path, "list file", false)
	return w.diags, reached
}

// testHookTrustChecked, set only by tests, runs between the trust check
// of a policy (with its variables files) or of a list file and the
// reading of what it judged, with the path checked: what another user
// could do in that window must change nothing that is read.
var testHookTrustChecked func(checked string)

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

// trustWalk judges paths the way the kernel resolves them, one name at a
// time from /, as sshd's StrictModes judges the path to authorized_keys:
// anyone who can write a directory on the way, or owns a symbolic link
// followed, can make the path lead to a file of their choosing, however
// trustworthy that file is itself.
type trustWalk struct {
	mode  FileTrust
	seen  map[string]bool // real paths judged already (true: strictly, or reported): each is reported once
	diags hcl.Diagnostics
}

// check walks name and judges, for a file or directory that what names:
//   - every directory a name is looked up in: owned by root or the
//     running user, writable by no one else, except that a world- or
//     group-writable one with the sticky bit (/tmp) may be passed through:
//     the next name on the way exists, is trusted, and the sticky bit
//     keeps others from removing or renaming it;
//   - the directory the last name is looked up in, which must not be
//     writable by others at all, sticky or not (others could create the
//     name there first), unless stickyLast (a single policy or variables
//     file, named on the command line each time), or the last name is a
//     directory (nobody else can create a directory root owns);
//   - every symbolic link followed: owned by root or the running user;
//   - what the path ends at, if it is a regular file or a directory: as
//     a directory it is searched in;
//   - if a name on the way does not exist, the directory it would be
//     created in, as the one holding the last name (strictly, unless it
//     is the last name and stickyLast): whoever can create the name there
//     decides what the path leads to once it exists, and the sticky bit
//     only protects a name that exists already.
//
// A path that ends nowhere, at something else (a pipe, a device) or in a
// loop is not judged further: reading it says what is wrong. check
// returns the regular file reached, if any: nil means the file must not
// be read under this name without being judged again (openJudged).
func (w *trustWalk) check(name, what string, stickyLast bool) fs.FileInfo {
	full := name
	cwd := ""
	if !filepath.IsAbs(name) {
		var err error
		if cwd, err = os.Getwd(); err != nil {
			return nil
		}
		full = cwd + string(filepath.Separator) + name
	}
	rest := pathtrust.Split(full)
	real := string(filepath.Separator)
	links := 0
	// shown names a real path in diagnostics: as the user wrote it while
	// no link was followed, else as the real path it is.
	shown := func(p string) string {
		if links > 0 {
			return fmt.Sprintf("%s (on the way to %s, through a symbolic link)", p, name)
		}
		if cwd != "" {
			if rel, err := filepath.Rel(cwd, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				return rel
			}
		}
		return p
	}
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			real = filepath.Dir(real) // real has no links: its parent is lexical
			continue
		}
		next := filepath.Join(real, c)
		last := len(rest) == 0
		info, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// Not there yet: whoever can create it in real
			// decides what it will be. Reading it then says it is
			// missing, if nobody else could have created it.
			role := dirHolding
			if last && stickyLast {
				role = dirHoldingSticky
			}
			on := "" // shown(next) says so after a link
			if !last && links == 0 {
				on = name
			}
			w.judgeMissing(real, shown(real), next, shown(next), on, what, role)
			return nil
		}
		if err != nil {
			return nil // reading it reports the problem
		}
		role := dirAbove
		switch {
		case last && info.IsDir():
			// Nobody else can create a directory owned by root: as
			// one passed through.
		case last && stickyLast:
			role = dirHoldingSticky
		case last:
			role = dirHolding // even for a link: the name is what is read
		}
		w.judge(real, shown(real), what, role)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			w.judgeInfo(next, shown(next), what, link, info)
			if links++; links > pathtrust.MaxLinks {
				return nil // past the kernel's limit: the read fails and says so
			}
			target, err := os.Readlink(next)
			if err != nil {
				return nil
			}
			if filepath.IsAbs(target) {
				real = string(filepath.Separator)
			}
			rest = append(pathtrust.Split(target), rest...)
		case !last:
			if !info.IsDir() {
				return nil // not a directory: reading it says so
			}
			real = next
		case info.Mode().IsRegular():
			w.judgeInfo(next, shown(next), what, final, info)
			return info
		case info.IsDir():
			w.judgeInfo(next, shown(next), what, final, info)
		}
	}
	return nil
}

// The role of a step of a walk.
type trustRole int

const (
	dirAbove         trustRole = iota // a directory passed through
	dirHolding                        // the directory holding the last name
	dirHoldingSticky                  // the same, where the sticky bit suffices
	link                              // a symbolic link followed
	final                             // the file or directory reached
)

func (w *trustWalk) judge(p, shown, what string, role trustRole) {
	if w.judged(p, role) {
		return
	}
	info, err := os.Lstat(p)
	if err != nil {
		return
	}
	w.judgeInfo(p, shown, what, role, info)
}

// judged reports whether p was judged already, at least as strictly as
// role asks. A directory passed through (where the sticky bit suffices)
// is judged again as the one holding a last name, or as the directory
// reached (where it does not): a link can lead back to it.
func (w *trustWalk) judged(p string, role trustRole) bool {
	strict, ok := w.seen[p]
	return ok && (strict || !role.strict())
}

func (r trustRole) strict() bool { return r == dirHolding || r == final }

// judgeInfo adds the diagnostic for one step, if it is untrusted.
func (w *trustWalk) judgeInfo(p, shown, what string, role trustRole, info fs.FileInfo) {
	if w.judged(p, role) {
		return
	}
	w.seen[p] = role.strict()
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	why, fix := distrust(p, what, role, info.Mode(), st, false)
	if why == "" {
		return
	}
	summary := "Untrusted " + what
	switch role {
	case dirAbove:
		summary = "Untrusted directory above the " + what
	case dirHolding, dirHoldingSticky:
		summary = "Untrusted directory of the " + what
	case link:
		summary = "Untrusted symbolic link to the " + what
	}
	w.seen[p] = true
	modes := fmt.Sprintf("mode %04o, owner uid %d", st.Mode&0o7777, st.Uid)
	if role == link {
		modes = fmt.Sprintf("a symbolic link, owner uid %d", st.Uid)
	}
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail: fmt.Sprintf("%s (%s): %s, so someone other than root could decide who may reach this host. "+
			"%s, or pass --strict-modes=false to only warn.",
			shown, modes, why, fix),
	}
	if w.mode == TrustWarn {
		d.Severity = hcl.DiagWarning
		d.Detail = fmt.Sprintf("%s (%s): %s, so someone other than root could decide who may reach this host; read anyway because of --strict-modes=false.",
			shown, modes, why)
	}
	w.diags = append(w.diags, d)
}

// judgeMissing judges dir, where the name next on the way to a file does
// not exist (missing, as shown; on: the path it is on the way to, if it
// is not the file itself), as the directory that holds it in role: anyone
// who can create the name there can make the path lead to a file of their
// choosing before its owner creates it, and nothing would then tell that
// file from the one meant.
func (w *trustWalk) judgeMissing(dir, shown, next, missing, on, what string, role trustRole) {
	if w.judged(dir, role) {
		return
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return
	}
	w.seen[dir] = role.strict()
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	why, fix := distrust(dir, what, role, info.Mode(), st, true)
	if why == "" {
		return
	}
	w.seen[dir] = true
	summary := "Missing " + what + " in an untrusted directory"
	if on != "" {
		missing = fmt.Sprintf("%s (on the way to %s)", missing, on)
		summary = "Missing directory on the way to the " + what + ", in an untrusted directory"
	}
	if on != "" && info.Mode()&fs.ModeSticky != 0 && trustedOwner(st.Uid) {
		// A directory root creates there is passed through.
		fix = fmt.Sprintf("Create %s first, as root (mkdir -m 0755 %s), or keep the %s in a directory only root can write", next, next, what)
	}
	detail := fmt.Sprintf("%s does not exist, and %s (mode %04o, owner uid %d), where it would be created, is not trusted: %s, so someone other than root could create it and decide who may reach this host",
		missing, shown, st.Mode&0o7777, st.Uid, why)
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
		Detail: fmt.Sprintf("%s. %s, or pass --strict-modes=false to only warn.", detail, fix)}
	if w.mode == TrustWarn {
		d.Severity = hcl.DiagWarning
		d.Detail = detail + "; only a warning because of --strict-modes=false."
	}
	w.diags = append(w.diags, d)
}

// distrust says why a step of a walk is untrusted (why, for a person, and
// fix, what to do about it), or gives "" if it is trusted. missing: the
// step is a directory in which a name on the way does not exist.
func distrust(p, what string, role trustRole, perm fs.FileMode, st *syscall.Stat_t, missing bool) (why, fix string) {
	sticky := perm&fs.ModeSticky != 0
	who := pathtrust.OtherWriters(perm, st.Gid)
	if who != "everyone" && st.Gid == 0 {
		who = "" // group root: nobody root does not trust
	}
	fix = fmt.Sprintf("Make it owned by root and writable only by its owner (chown root %s; chmod go-w %s)", p, p)
	if missing {
		fix = fmt.Sprintf("Make %s owned by root and writable only by its owner (chown root %s; chmod go-w %s)", p, p, p)
	}
	switch {
	case !trustedOwner(st.Uid) && role == link:
		why = fmt.Sprintf("the link belongs to uid %d, neither root nor the user running portwarden, and its owner can point it at any file", st.Uid)
		fix = fmt.Sprintf("Replace the link with the file itself, or with a link root owns (chown -h root %s)", p)
	case !trustedOwner(st.Uid):
		why = fmt.Sprintf("it belongs to uid %d, neither root nor the user running portwarden", st.Uid)
	case role == link:
		return "", "" // a link's own mode means nothing
	case who != "" && sticky && role == dirHolding:
		why = fmt.Sprintf("%s can create files in it: the sticky bit keeps others from removing or replacing a %s there, not from creating one under a name the policy reads before it exists (even as a hard link to a root-owned file)", who, what)
		if missing {
			why = fmt.Sprintf("%s can create files in it: the sticky bit protects only names that exist already", who)
		}
		fix = fmt.Sprintf("Keep the %s in a directory only root can write (chmod go-w %s, or move it)", what, p)
	case who != "" && !(sticky && (role == dirAbove || role == dirHoldingSticky)):
		why = who + " can write it"
	}
	return why, fix
}

// trustedOwner: root, the running user, or the user who ran sudo.
func trustedOwner(uid uint32) bool {
	if pathtrust.RootOrSelf(uid) || int(uid) == os.Getuid() {
		return true
	}
	if s, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && s == int(uid) {
		return true
	}
	return false
}
