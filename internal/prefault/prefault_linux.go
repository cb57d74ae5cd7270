package prefault

import (
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE, which package syscall lacks
// (golang.org/x/sys/unix has it, but is initialised too late to help).
const madvPopulateWrite = 23

// heapChunk is the runtime's unit of heap growth (pallocChunkBytes): the
// runtime maps its heap a whole chunk at a time, so the rest of the chunk
// the frontier is in is mapped and writable.
const heapChunk = 4 << 20

// startBytes is what init populates: the heap of a command that loads no
// policy (--version, an unchanged re-apply answered from the state
// directory) stays within it. More did not pay: populating 3 MiB more
// before a 1,000-source plan cost what the faults it saved did.
const startBytes = 1 << 20

func init() { heap(startBytes) }

// heap populates the n bytes of heap above the frontier, as far as the
// chunk the frontier is in goes, and returns where it started. Errors (a
// kernel before 5.14, memory pressure) leave the pages to be faulted in as
// they are used.
func heap(n uintptr) (start uintptr) {
	// A fresh 64 KiB object comes from free pages at about where the heap
	// ends (the processor's page cache or the page allocator, which hands
	// out the lowest free run first; a young heap has no holes). It is
	// never written (fresh pages need no zeroing) and becomes garbage at
	// once, so it costs address space only.
	marker := make([]byte, 64<<10)
	escape = marker
	start, end := bounds(uintptr(unsafe.Pointer(unsafe.SliceData(marker))), n, uintptr(syscall.Getpagesize()))
	escape = nil
	if end <= start {
		return start
	}
	// The raw call: syscall.Madvise wants a slice, and a slice over
	// memory no Go object owns is what the unsafe rules forbid.
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite)
	return start
}

// escape keeps the marker on the heap, where the compiler would otherwise
// put a constant-size slice that does not outlive its function.
var escape []byte

// bounds is the page range heap populates for a frontier at addr: n bytes
// from its page, whole pages, not past the end of its chunk.
func bounds(addr, n, page uintptr) (start, end uintptr) {
	start = addr &^ (page - 1)
	end = min((addr+heapChunk)&^(heapChunk-1), (start+n+page-1)&^(page-1))
	return start, end
}
