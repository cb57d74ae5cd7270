//go:build !linux

package prefault

// Heap does nothing where there is no MADV_POPULATE_WRITE.
func Heap(n uintptr) {}
