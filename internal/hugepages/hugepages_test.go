package hugepages

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// A large array is advised (the kernel lists the hg flag on the mapping
// that holds it), a small one is left alone.
func TestSliceAdvisesLargeArrays(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("no transparent huge pages in this kernel")
	}
	large := make([]uint64, 8<<20/8)
	Slice(large)
	small := make([]uint64, 64<<10/8)
	Slice(small)
	if !advised(t, unsafe.Pointer(&large[len(large)/2])) {
		t.Error("the middle of an 8 MiB array is not advised")
	}
	if advised(t, unsafe.Pointer(&small[0])) {
		t.Error("a 64 KiB array was advised")
	}
	Slice([]int(nil)) // nothing to advise, no panic
}

// advised reports whether the mapping holding p carries MADV_HUGEPAGE
// ("hg" in its VmFlags in /proc/self/smaps).
func advised(t *testing.T, p unsafe.Pointer) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	addr := uintptr(p)
	inside := false
	for line := range strings.Lines(string(data)) {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") && !strings.HasPrefix(line, "VmFlags") {
			inside = lo <= addr && addr < hi
			continue
		}
		if inside && strings.HasPrefix(line, "VmFlags:") {
			return strings.Contains(line, " hg")
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return false
}
