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
// an object is in is mapped and writable.
const heapChunk = 4 << 20

// frontier is a heap object allocated at init: the heap grows upwards
// from about here.
var frontier *[64]byte

func init() {
	frontier = new([64]byte)
	populate(uintptr(unsafe.Pointer(frontier)))
}

// populate maps the pages from the one holding addr to the end of its heap
// chunk. Errors (a kernel before 5.14, memory pressure) leave the pages to
// be faulted in as they are used.
func populate(addr uintptr) {
	page := uintptr(syscall.Getpagesize())
	start := addr &^ (page - 1)
	end := (addr + heapChunk) &^ (heapChunk - 1)
	if end <= start {
		return
	}
	// The raw call: syscall.Madvise wants a slice, and a slice over
	// memory no Go object owns is what the unsafe rules forbid.
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite)
}
