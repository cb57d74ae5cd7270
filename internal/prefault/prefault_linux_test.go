package prefault

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// canPopulate says whether the kernel has MADV_POPULATE_WRITE (5.14).
func canPopulate(t *testing.T) {
	t.Helper()
	probe, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := unix.Madvise(probe, madvPopulateWrite); errors.Is(err, unix.EINVAL) {
		t.Skipf("this kernel cannot populate (MADV_POPULATE_WRITE): %v", err)
	}
}

// missingPages counts the pages of [start, end) that are not resident.
func missingPages(t *testing.T, start, end uintptr) (missing, all int) {
	t.Helper()
	page := uintptr(unix.Getpagesize())
	start &^= page - 1
	vec := make([]byte, (end-start+page-1)/page)
	// The raw call, as in heap: the range is the runtime's heap, mapped
	// for the life of the process, not a Go object.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, uintptr(len(vec))*page, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 == 0 {
			missing++
		}
	}
	return missing, len(vec)
}

// heap maps the n bytes above the frontier, within the frontier's chunk,
// in one call instead of a fault a page. The second, larger call is
// checked above what the first one mapped.
func TestHeapPopulatesAheadOfTheFrontier(t *testing.T) {
	canPopulate(t)
	var mapped uintptr
	for _, n := range []uintptr{startBytes, 3 << 20} {
		start := heap(n)
		end := min(start+n, (start+heapChunk)&^(heapChunk-1))
		from := max(start, mapped)
		mapped = end
		if end <= from {
			continue // the chunk ended before: nothing new to check
		}
		// The test binary's own goroutines may allocate meanwhile: nearly
		// all must be there.
		if missing, all := missingPages(t, from, end); missing > all/10 {
			t.Errorf("heap(%d): %d of the %d pages above the frontier are not resident", n, missing, all)
		}
	}
}

// The range is n bytes from the frontier's page, whole pages, and never
// past the chunk the runtime mapped: a small command does not pay for a
// large one's heap, and nothing outside the heap is touched.
func TestBounds(t *testing.T) {
	const page = 4096
	chunk := uintptr(0xc000000000)
	for _, c := range []struct{ addr, n, start, end uintptr }{
		{chunk + 100, 1 << 20, chunk, chunk + 1<<20},
		{chunk + page + 1, 10, chunk + page, chunk + 2*page},
		{chunk + heapChunk - page + 8, 1 << 20, chunk + heapChunk - page, chunk + heapChunk},
		{chunk + heapChunk - 2*page, 3 << 20, chunk + heapChunk - 2*page, chunk + heapChunk},
	} {
		start, end := bounds(c.addr, c.n, page)
		if start != c.start || end != c.end {
			t.Errorf("bounds(%#x, %d) = [%#x, %#x), want [%#x, %#x)", c.addr, c.n, start, end, c.start, c.end)
		}
	}
}
