package safeapply

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// Binary identifies the portwarden build that wrote a saved plan: apply
// runs a plan only with the build that wrote it (and showed it), as
// Terraform does, because another build may read the same file as other
// rules.
type Binary struct {
	// Version and Commit are main's link-time version and commit (make
	// build: git describe and the commit), "dev" and the commit of the Go
	// build info, or "unknown", otherwise.
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Build is the Go build ID of the executable (go tool buildid FILE):
	// a hash of what it was built from and of what it is, so two builds
	// of different trees that both say "dev" differ. When it cannot be
	// read, the executable's size and modification time.
	Build string `json:"build"`
}

func (b *Binary) String() string {
	if b == nil {
		return "a portwarden from before plans named the binary that wrote them"
	}
	return fmt.Sprintf("portwarden %s (commit %s, build %s)", b.Version, b.Commit, b.Build)
}

// short is b without the build when the version or commit alone tell
// two binaries apart.
func (b *Binary) short(other *Binary) string {
	if b == nil || other == nil || b.Version == other.Version && b.Commit == other.Commit {
		return b.String()
	}
	return fmt.Sprintf("portwarden %s (commit %s)", b.Version, b.Commit)
}

func (b *Binary) equal(o *Binary) bool { return b != nil && o != nil && *b == *o }

// versionFunc tells the version and commit of the running binary; main
// sets it (SetBinary).
var versionFunc = func() (string, string) { return "dev", "unknown" }

// SetBinary tells safeapply how to learn the running binary's version and
// commit (main's link-time variables), asked only when a plan is saved or
// read.
func SetBinary(f func() (version, commit string)) { versionFunc = f }

// thisBinary is the running binary, worked out once (a variable so tests
// can play another build).
var thisBinary = sync.OnceValue(func() *Binary {
	v, c := versionFunc()
	return &Binary{Version: v, Commit: c, Build: buildID("/proc/self/exe")}
})

// buildID is the Go build ID of the executable at path (the running one:
// /proc/self/exe is the file this process runs even when it was replaced
// since), or its size and modification time when it has none.
func buildID(path string) string {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		if id := goBuildID(f); id != "" {
			return id
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("size %d, modified %s", fi.Size(), fi.ModTime().UTC().Format("2006-01-02T15:04:05.000000000Z"))
}

// goBuildID reads the Go build ID note (name "Go", type 4) from the ELF
// program headers of r, "" when there is none: a few small reads near the
// start of the file, where the Go linker puts it.
func goBuildID(r io.ReaderAt) string {
	var ident [64]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil || string(ident[:4]) != "\x7fELF" {
		return ""
	}
	var bo binary.ByteOrder
	switch ident[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return ""
	}
	var phoff uint64
	var phentsize, phnum uint16
	is64 := ident[4] == 2
	if is64 {
		phoff, phentsize, phnum = bo.Uint64(ident[0x20:]), bo.Uint16(ident[0x36:]), bo.Uint16(ident[0x38:])
	} else if ident[4] == 1 {
		phoff, phentsize, phnum = uint64(bo.Uint32(ident[0x1c:])), bo.Uint16(ident[0x2a:]), bo.Uint16(ident[0x2c:])
	} else {
		return ""
	}
	if phnum == 0 || phnum > 64 || phentsize < 32 || phentsize > 128 {
		return ""
	}
	ph := make([]byte, int(phentsize)*int(phnum))
	if _, err := r.ReadAt(ph, int64(phoff)); err != nil {
		return ""
	}
	for i := 0; i < int(phnum); i++ {
		h := ph[i*int(phentsize):]
		const ptNote = 4
		if bo.Uint32(h) != ptNote {
			continue
		}
		var off, size uint64
		if is64 {
			off, size = bo.Uint64(h[8:]), bo.Uint64(h[32:])
		} else {
			off, size = uint64(bo.Uint32(h[4:])), uint64(bo.Uint32(h[16:]))
		}
		if size > 4096 {
			continue
		}
		notes := make([]byte, size)
		if _, err := r.ReadAt(notes, int64(off)); err != nil {
			continue
		}
		for len(notes) >= 12 {
			namesz, descsz, typ := bo.Uint32(notes), bo.Uint32(notes[4:]), bo.Uint32(notes[8:])
			nameEnd := 12 + (uint64(namesz)+3)&^3
			descEnd := nameEnd + (uint64(descsz)+3)&^3
			if descEnd > uint64(len(notes)) {
				break
			}
			const goBuildIDNote = 4
			if typ == goBuildIDNote && namesz == 4 && string(notes[12:15]) == "Go\x00" {
				return string(notes[nameEnd : nameEnd+uint64(descsz)])
			}
			notes = notes[descEnd:]
		}
	}
	return ""
}
