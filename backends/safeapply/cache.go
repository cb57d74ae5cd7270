package safeapply

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// RootDir is the state root: root when given, else PORTWARDEN_STATE_DIR,
// else DefaultRoot, absolute and clean (rootPath). Backends keep their
// caches below it, in the directory of the namespace they work in
// (NamespaceDir).
func RootDir(root string) string {
	abs, err := rootPath(root)
	if err != nil {
		// Only a relative root when the working directory is gone: the
		// check (checkRoot) fails with this error before anything below
		// it is opened.
		return filepath.Clean(rootSetting(root))
	}
	return abs
}

// rootSetting is the state root as given: root, else
// PORTWARDEN_STATE_DIR, else DefaultRoot.
func rootSetting(root string) string {
	if root == "" {
		root = os.Getenv("PORTWARDEN_STATE_DIR")
	}
	if root == "" {
		root = DefaultRoot
	}
	return root
}

// rootPath is the state root made absolute and clean, in the one place
// it is: the trust check walks this path, and every state file is named
// below it. The kernel resolves "link/.." from the link's target and a
// relative path from the working directory, where the text says beside
// the link and $PWD (which os.Getwd returns) may name the directory
// through a link; a file opened by the text as given could land in a
// directory the check never saw.
func rootPath(root string) (string, error) {
	abs, err := filepath.Abs(rootSetting(root))
	if err != nil {
		return "", fmt.Errorf("state directory %s: %w: give PORTWARDEN_STATE_DIR as an absolute path", rootSetting(root), err)
	}
	return abs, nil
}

// NamespaceDir is the state directory of the network namespace with the
// given cookie below root: the directory Open returns for the caller's
// own namespace.
func NamespaceDir(root string, cookie uint64) string {
	return filepath.Join(RootDir(root), "netns-"+strconv.FormatUint(cookie, 10))
}

// A backend's cache (the nftables backend's nftables.cache) lives in the
// directory of the namespace it works in, which may not be the caller's,
// and is read and written by commands that only read (status, check,
// metrics, plan), in the background of the command. So it is used only
// where the state stands already, as it stands at that moment: OpenCache
// and ReplaceCache check the state root and the namespace's directory
// each time they are called (a check when the backend was opened proves
// nothing about a root made, removed or replaced since), and never make
// either. The file is then opened by its path, which resolves as checked:
// every directory and link on the way belongs to root or the effective
// user, and nobody else may write those directories or, in a sticky one,
// rename or remove what is in it. Only Open makes them, for the caller's own namespace, through
// trustRoot and makeRoot, which follow no link planted after the check:
// os.MkdirAll of a missing root in a sticky directory (/tmp) would
// follow one planted meanwhile and write the cache wherever it leads.
// Failing to find or trust the directory costs only speed: the backend
// reads the kernel instead.

// cacheFile names a backend's cache in openOwnFile's refusals.
var cacheFile = ownFile{
	what:  "the cache",
	forge: "what the kernel holds, which commands then trust instead of reading the kernel",
	redo:  "the next command that reads the kernel writes a new one",
}

// existingNamespaceDir is the state directory of the namespace cookie
// below root when the root (checkRoot) and the directory (statStateDir)
// exist and may be trusted now; fs.ErrNotExist when either is missing.
// The check is one lstat per name on the way (no more than the check
// when the backend was opened) and one for the directory.
func existingNamespaceDir(root string, cookie uint64) (string, error) {
	abs, missing, err := checkRoot(root)
	if err != nil {
		return "", err
	}
	if missing {
		return "", fmt.Errorf("state directory %s: %w (only a command that writes state makes it)", abs, fs.ErrNotExist)
	}
	dir := NamespaceDir(abs, cookie)
	exists, err := statStateDir(dir)
	if err != nil {
		return "", err
	}
	if !exists {
		return "", fmt.Errorf("state directory %s: %w (only a command that writes state makes it)", dir, fs.ErrNotExist)
	}
	return dir, nil
}

// OpenCache opens the file name in the state directory of the namespace
// cookie below root ("" for the default) to read it, when the root and
// the directory exist and may be trusted now (existingNamespaceDir), and
// the file is one nobody else could have written (openOwnFile: not a
// link, not a FIFO, a regular file of root's or the effective user's
// that group and others cannot write). fi is the file as checked.
// fs.ErrNotExist when there is none.
func OpenCache(root string, cookie uint64, name string) (f *os.File, fi fs.FileInfo, err error) {
	dir, err := existingNamespaceDir(root, cookie)
	if err != nil {
		return nil, nil, err
	}
	return openOwnFile(filepath.Join(dir, name), os.O_RDONLY, cacheFile)
}

// ReplaceCache replaces the file name in the state directory of the
// namespace cookie below root ("" for the default) with data, when the
// root and the directory exist and may be trusted now
// (existingNamespaceDir); it makes neither: fs.ErrNotExist when one is
// missing. The data goes to a new temporary file (O_CREAT|O_EXCL, which
// follows no link either) renamed over name, which replaces whatever is
// there, a link included, and never writes through it.
func ReplaceCache(root string, cookie uint64, name string, data []byte) error {
	dir, err := existingNamespaceDir(root, cookie)
	if err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, name), data)
}

// BootID identifies this boot of the kernel: namespace cookies and
// nf_tables generations start again after a reboot, so a state directory
// that outlives one (PORTWARDEN_STATE_DIR on a disk) must not be trusted
// across it.
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(b)
}

// Compiled remembers what a policy compiled to, so that a later command
// can tell an unchanged policy by hashing its files instead of loading it
// (policies.InputDigest).
type Compiled struct {
	Digest      string   `json:"digest"`      // policies.InputDigest, and the binary that compiled it
	Lists       []string `json:"lists"`       // the list files the policy read
	Fingerprint string   `json:"fingerprint"` // of the compiled Ruleset
	Backend     string   `json:"backend"`
	Warnings    string   `json:"warnings,omitempty"` // diagnostics printed when it was loaded, printed again
	// NextExpiry is the earliest grant deadline of the compiled Ruleset:
	// the same files compile differently once it has passed, and plan
	// shows what expires within a week, so the record serves only before
	// a week ahead of it. Zero when there is no grant.
	NextExpiry time.Time `json:"next_expiry,omitzero"`
}

// ExpiryWindow is how far ahead plan and status show deadlines.
const ExpiryWindow = 7 * 24 * time.Hour

// Current reports whether the record may stand for compiling the same
// files again at now.
func (c *Compiled) Current(now time.Time) bool {
	return c.NextExpiry.IsZero() || c.NextExpiry.After(now.Add(ExpiryWindow))
}

// RecordCompiled writes what the policy compiled to. It is replaced
// atomically but not synced: it is a cache, a lost or damaged one costs
// one full load, and the two syncs were a fifth of a small apply.
func (d *Dir) RecordCompiled(c Compiled) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(d.file("compiled.json"), append(data, '\n'))
}

// LastCompiled reads it, nil when there is none.
func (d *Dir) LastCompiled() (*Compiled, error) {
	var c Compiled
	ok, err := readJSON(d.file("compiled.json"), &c)
	if !ok {
		return nil, err
	}
	return &c, nil
}
