package hugepages

import "golang.org/x/sys/unix"

// advise is MADV_HUGEPAGE on b; a refusal (an old kernel, THP compiled
// out) leaves the small pages.
func advise(b []byte) { unix.Madvise(b, unix.MADV_HUGEPAGE) }
