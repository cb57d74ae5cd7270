package safeapply

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// namespaceInode is the inode of the network namespace at path
// (/proc/PID/ns/net, a bind mount under /run/netns).
func namespaceInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// liveNamespaces returns the inodes of the network namespaces that exist:
// those some process is in, and those bind-mounted (ip netns add, Docker,
// CNI plugins). A namespace kept alive only by an open file descriptor is
// not seen; its state directory goes, which costs the journal of a
// namespace no process is in. One stat per process: a glob of
// /proc/[0-9]*/ns/net reads two directories per process, which took 12 ms
// with 64 processes.
func liveNamespaces() map[uint64]bool {
	live := map[uint64]bool{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if name := p.Name(); name[0] >= '0' && name[0] <= '9' {
			if ino, err := namespaceInode("/proc/" + name + "/ns/net"); err == nil {
				live[ino] = true
			}
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return live
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID parent major:minor root mountpoint ... - fstype source
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		root := fields[3]
		if ino, ok := strings.CutPrefix(root, "net:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
				live[n] = true
			}
		}
	}
	return live
}

// sweepAfter is how many other namespaces' directories (live ones count
// too) there must be before a new namespace's first command looks for
// stale ones. The look stats every process (0.6-1.8 ms with 66 processes,
// 17-25 ms with 2,066, measured on a 2-core VM); a few
// leftover directories of a few kilobytes each cost nothing, so namespaces
// that come and go pay for the walk only once some may have gathered. A
// variable so that tests can make it 1.
var sweepAfter = 8

// sweepStale removes the state directories under root of namespaces that
// no longer exist, leaving self and any directory whose lock is held.
// Directories without a namespace record (written by an older version) are
// kept: nothing says whose they are. Failures are ignored: a leftover
// directory is untidy, never harmful.
func sweepStale(root, self string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	var others []string
	for _, e := range entries {
		if path := filepath.Join(root, e.Name()); e.IsDir() && strings.HasPrefix(e.Name(), dirPrefix) && path != self {
			others = append(others, path)
		}
	}
	if len(others) < sweepAfter {
		return
	}
	var live map[uint64]bool
	for _, path := range others {
		rec, err := os.ReadFile(filepath.Join(path, "netns"))
		if err != nil {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSpace(string(rec)), 10, 64)
		if err != nil {
			continue
		}
		if live == nil {
			live = liveNamespaces()
		}
		if live[ino] {
			continue
		}
		d := &Dir{Path: path}
		l, err := d.tryAcquire("portwarden (removing the state of a namespace that no longer exists)", false)
		if err != nil || l == nil {
			continue
		}
		d.Remove(l)
	}
}
