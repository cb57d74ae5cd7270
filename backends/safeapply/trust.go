package safeapply

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portwarden/portwarden/internal/pathtrust"
)

// ErrUntrustedState: the state root, the plan-signing key or a directory
// on the way to them could be written by a user other than root or the
// one running portwarden, who could then forge plans, journal entries and
// caches; nothing in it is trusted (errors.Is).
var ErrUntrustedState = errors.New("untrusted state directory")

// untrustedError names what was found and what to do.
type untrustedError struct {
	path string
	msg  string
}

func (e *untrustedError) Error() string { return e.msg }

func (e *untrustedError) Is(target error) bool { return target == ErrUntrustedState }

// checkRoot checks the state root as sshd's StrictModes checks
// authorized_keys, before anything below it is trusted: the root must be
// a directory owned by root or the effective user that neither group nor
// others can write, and every directory on the way to it (symbolic links
// followed, each link owned by root or the effective user) must be owned
// by root or the effective user and writable by nobody else, unless it is
// sticky (/tmp): there nobody else can rename or remove what is in it.
// abs is the root checked (rootPath): callers name the files below the
// root from it, never from root as given, so that what is checked is what
// is opened. missing says that the root does not exist yet; the
// directories on the way to it that exist were checked, so creating it is
// safe (trustRoot).
func checkRoot(root string) (abs string, missing bool, err error) {
	abs, err = rootPath(root)
	if err != nil {
		return "", false, err
	}
	create, err := checkPath(abs)
	return abs, create != "", err
}

// checkPath walks abs (absolute) from "/" as the kernel resolves it,
// checking each directory it passes and each link it follows; the last
// directory is the state root. When a name is missing, create is the
// directory abs would resolve to once made: the last directory the walk
// found (no link in it: each of its names was a directory), and the names
// still to walk, which are made as directories and so hold no link either
// (a ".." among them, from a link's target, is taken from the text, which
// is then where the kernel would take it). create is "" when the root
// exists.
func checkPath(abs string) (create string, err error) {
	fi, err := os.Stat("/")
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := checkEntry("/", abs, fi, abs == "/"); err != nil {
		return "", err
	}
	cur := "/"
	rest := pathtrust.Split(abs)
	links := 0
	// judged: the directory the walk ends in was held to the rules of the
	// state root, not those of a directory on the way.
	judged := abs == "/"
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", fmt.Errorf("check the state directory %s: %w", abs, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > pathtrust.MaxLinks {
				return "", fmt.Errorf("check the state directory %s: too many levels of symbolic links", abs)
			}
			// A link in a sticky directory can be replaced by its owner.
			if uid, ok := ownerOf(fi); ok && !trustedUID(uid) {
				return "", untrusted(next, abs, fi, false, fmt.Sprintf("it belongs to uid %d, neither root nor uid %d that runs portwarden", uid, os.Geteuid()),
					"make it root's (chown -h 0 "+next+")")
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("check the state directory %s: %w", abs, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(pathtrust.Split(target), rest...)
			continue
		}
		if err := checkEntry(next, abs, fi, len(rest) == 0); err != nil {
			return "", err
		}
		judged = len(rest) == 0
		cur = next
	}
	if !judged {
		// A link to "." or one whose target ends in ".." ends the walk in
		// a directory it passed on the way, where sticky and writable by
		// everyone was fine (/tmp); as the state root it is not.
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", fmt.Errorf("check the state directory %s: %w", abs, err)
		}
		if err := checkEntry(cur, abs, fi, true); err != nil {
			return "", err
		}
	}
	return "", nil
}

// checkEntry checks one directory on the way to the state root root, or
// the root itself (last).
func checkEntry(path, root string, fi fs.FileInfo, last bool) error {
	if !fi.IsDir() {
		return fmt.Errorf("the state directory %s: %s is not a directory: point PORTWARDEN_STATE_DIR at a directory", root, path)
	}
	uid, ok := ownerOf(fi)
	if !ok {
		return nil
	}
	euid := os.Geteuid()
	perm := fi.Mode()
	switch {
	case !trustedUID(uid) && last:
		return untrusted(path, root, fi, last, fmt.Sprintf("it belongs to uid %d, not to uid %d that runs portwarden (nor to root)", uid, euid),
			fmt.Sprintf("make it yours and writable only by you (chown %d %s; chmod go-w %s)", euid, path, path))
	case !trustedUID(uid):
		return untrusted(path, root, fi, last, fmt.Sprintf("it belongs to uid %d, neither root nor uid %d that runs portwarden", uid, euid),
			fmt.Sprintf("make it root's and writable only by root (chown 0 %s; chmod go-w %s)", path, path))
	case last && perm&0o022 != 0:
		return untrusted(path, root, fi, last, writers(fi)+" can write it",
			fmt.Sprintf("make it writable only by you (chmod go-w %s)", path))
	case !last && perm&0o022 != 0 && perm&fs.ModeSticky == 0:
		return untrusted(path, root, fi, last, writers(fi)+" can write it, and it is not sticky (as /tmp is)",
			fmt.Sprintf("make it writable only by its owner (chmod go-w %s)", path))
	}
	return nil
}

// writers says who other than the owner may write fi, which someone may.
func writers(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return pathtrust.OtherWriters(fi.Mode(), st.Gid)
	}
	if fi.Mode()&0o002 != 0 {
		return "everyone"
	}
	return "its group"
}

// untrusted is the refusal of path, the state root root or a directory or
// link on the way to it (last: the directory root resolves to): what was
// found, why it is not trusted, and fix, what to do.
func untrusted(path, root string, fi fs.FileInfo, last bool, why, fix string) error {
	uid, _ := ownerOf(fi)
	var what string
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		what = fmt.Sprintf("the symbolic link %s (owner uid %d), on the way to the state directory %s,", path, uid, root)
	case path == root:
		what = fmt.Sprintf("the state directory %s (owner uid %d, mode %04o)", path, uid, fileMode(fi))
	case last:
		what = fmt.Sprintf("%s (owner uid %d, mode %04o), where the state directory %s leads,", path, uid, fileMode(fi), root)
	default:
		what = fmt.Sprintf("%s (owner uid %d, mode %04o), a directory on the way to the state directory %s,", path, uid, fileMode(fi), root)
	}
	return &untrustedError{path: path, msg: fmt.Sprintf(
		"%s is not safe: %s, so someone else could forge the saved plans, journal and caches portwarden trusts there; nothing in it was used. "+
			"Either %s, or point PORTWARDEN_STATE_DIR at a directory only you can write (the default is %s)",
		what, why, fix, DefaultRoot)}
}

// fileMode is the permission bits as ls -l shows them in octal, with the
// setuid, setgid and sticky bits.
func fileMode(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777
	}
	m := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func ownerOf(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// trustedUID: root, or the effective user (whose files it writes).
func trustedUID(uid uint32) bool { return pathtrust.RootOrSelf(uid) }

// checkStateDir checks a directory below a trusted root (a namespace's):
// a directory, not a link, owned by root or the effective user, writable
// by nobody else. Missing is fine: it is created 0700.
func checkStateDir(path string) error {
	_, err := statStateDir(path)
	return err
}

// statStateDir checks the directory path as checkStateDir does, in one
// lstat, and says whether it exists.
func statStateDir(path string) (exists bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state directory: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return true, &untrustedError{path: path, msg: fmt.Sprintf("the state directory %s is a symbolic link, which portwarden never makes: nothing in it was used. Remove it (rm %s)", path, path)}
	}
	return true, checkEntry(path, path, fi, true)
}

// trustRoot checks the state root (checkRoot), creating it 0700 where
// the check's walk led when it does not exist yet (makeRoot), and checking
// it again once made. abs is
// the root checked, below which the caller names its files.
func trustRoot(root string) (abs string, err error) {
	abs, err = rootPath(root)
	if err != nil {
		return "", err
	}
	create, err := checkPath(abs)
	if err != nil || create == "" {
		return abs, err
	}
	if beforeMakeRoot != nil {
		beforeMakeRoot(abs)
	}
	if err := makeRoot(abs, create); err != nil {
		return "", err
	}
	// Again, by the path every later open resolves: through the links on
	// the way, which makeRoot took as resolved by the first check.
	if create, err = checkPath(abs); err == nil && create != "" {
		err = fmt.Errorf("state directory %s: it is gone right after it was made", abs)
	}
	return abs, err
}

// beforeMakeRoot, when set (by tests), runs between the check that found
// the state root abs missing and its making: when someone else could
// plant a link or a directory in a sticky directory on the way.
var beforeMakeRoot func(abs string)

// makeRoot makes dir, the directory the check of the state root root
// found missing (checkPath's create: no link in it), and each missing
// directory on the way, 0700, following no symbolic link. Each name is
// opened from the directory before it with O_NOFOLLOW and made with
// mkdirat where missing; a name someone else made meanwhile (EEXIST) is
// opened the same way. Each directory entered is held to the rules of
// the check (checkEntry) before anything is made in it.
//
// Why not os.MkdirAll of the root: it resolves the path again, following
// whatever it finds. Between the check and the making, anyone can create
// the missing name in a sticky directory on the way (/tmp) as a link, and
// MkdirAll would make directories at the link's target (anywhere root
// can write) before the check after it refused the link. The links that
// lead to the root were judged by the check, which resolved them into
// dir; so a link met here was planted after the check, and is refused.
func makeRoot(root, dir string) error {
	slash, err := unix.Open("/", dirFlags, 0)
	if err != nil {
		return fmt.Errorf("make the state directory %s: open /: %w", root, err)
	}
	parent := os.NewFile(uintptr(slash), "/")
	defer func() { parent.Close() }()
	names := pathtrust.Split(dir)
	for i, name := range names {
		path := filepath.Join(parent.Name(), name)
		pfd := int(parent.Fd())
		fd, err := openDirNoFollow(pfd, name)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("make the state directory %s: mkdir %s: %w", root, path, err)
			}
			fd, err = openDirNoFollow(pfd, name)
		}
		if err != nil {
			return notDirectory(path, root, err)
		}
		parent.Close()
		parent = os.NewFile(uintptr(fd), path)
		fi, err := parent.Stat()
		if err != nil {
			return fmt.Errorf("make the state directory %s: %w", root, err)
		}
		if err := checkEntry(path, root, fi, i == len(names)-1); err != nil {
			return err
		}
	}
	return nil
}

// dirFlags open a directory makeRoot walks through. O_PATH: the walk
// only looks names up in it (openat), makes names in it (mkdirat) and
// checks its owner and mode (fstat), all of which an O_PATH descriptor
// allows, and opening one needs search permission alone, as resolving a
// path (os.MkdirAll) does. O_RDONLY needs read permission too, so a user
// other than root (with CAP_NET_ADMIN but not CAP_DAC_OVERRIDE) was
// refused at a root-owned 0711 directory on the way that the path
// resolves through.
const dirFlags = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC

// openDirNoFollow opens the directory name in the directory dirfd, not
// through a link. With O_PATH, O_NOFOLLOW alone would open a link itself
// (as a descriptor of the link); O_DIRECTORY refuses it (ENOTDIR), and
// notDirectory then tells a link from a file.
func openDirNoFollow(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, dirFlags|unix.O_NOFOLLOW, 0)
}

// notDirectory is makeRoot's refusal of path, which could not be opened as
// a directory without following a link (err): a link planted there is
// untrusted, anything else is no directory. The Lstat only names what is
// there; the refusal stands whatever it finds.
func notDirectory(path, root string, err error) error {
	fi, lerr := os.Lstat(path)
	switch {
	case lerr != nil || fi.IsDir():
		return fmt.Errorf("make the state directory %s: open %s: %w", root, path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		uid, _ := ownerOf(fi)
		return &untrustedError{path: path, msg: fmt.Sprintf(
			"the symbolic link %s (owner uid %d) appeared on the way to the state directory %s while portwarden was making it, so someone else may have planted it; nothing was made through it. "+
				"Either remove it (rm %s) and run the command again, or point PORTWARDEN_STATE_DIR at a directory only you can write (the default is %s)",
			path, uid, root, path, DefaultRoot)}
	}
	return checkEntry(path, root, fi, false)
}
