package prefault

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// After init, the rest of the frontier's heap chunk is resident: mapped
// in one call instead of a fault a page.
func TestRestOfFirstChunkIsResident(t *testing.T) {
	addr := uintptr(unsafe.Pointer(frontier))
	page := uintptr(unix.Getpagesize())
	start, end := addr&^(page-1), (addr+heapChunk)&^(heapChunk-1)
	// A fresh mapping of the same length shows whether the kernel can
	// populate at all (MADV_POPULATE_WRITE is Linux 5.14).
	probe, err := unix.Mmap(-1, 0, int(page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := unix.Madvise(probe, madvPopulateWrite); errors.Is(err, unix.EINVAL) {
		t.Skipf("this kernel cannot populate (MADV_POPULATE_WRITE): %v", err)
	}
	vec := make([]byte, (end-start)/page)
	// mincore takes a slice over the range; the range is the runtime's
	// heap, which stays mapped for the life of the process.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	missing := 0
	for _, v := range vec {
		if v&1 == 0 {
			missing++
		}
	}
	// The test binary's own allocations and the scavenger may have
	// returned a few pages since; nearly all must be there.
	if missing > len(vec)/10 {
		t.Errorf("%d of the %d pages from the first heap object to the end of its chunk are not resident", missing, len(vec))
	}
}
