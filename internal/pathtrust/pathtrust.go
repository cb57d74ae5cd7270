package pathtrust

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// MaxLinks bounds the symbolic links a walk follows, as the kernel's
// limit (ELOOP): a longer chain fails to open anyway.
const MaxLinks = 40

// Split is the names a walk looks up for the path p, in order: empty
// names and "." are dropped, ".." is kept, since after a symbolic link
// it leads up from the link's target, which only the walk knows.
func Split(p string) []string {
	var names []string
	for _, n := range strings.Split(p, "/") {
		if n != "" && n != "." {
			names = append(names, n)
		}
	}
	return names
}

// OtherWriters says who besides its owner can write a file of mode perm
// and group gid: "everyone", "group GID", or "" for nobody.
func OtherWriters(perm fs.FileMode, gid uint32) string {
	switch {
	case perm&0o002 != 0:
		return "everyone"
	case perm&0o020 != 0:
		return fmt.Sprintf("group %d", gid)
	}
	return ""
}

// RootOrSelf reports whether uid is root or the effective user: what
// either owns, this process could have written itself.
func RootOrSelf(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }
