// Package prefault maps the Go heap's first pages in one system call at
// start-up, before the packages that fill them are initialised.
//
// Why: every command is a fresh process, and a fresh process meets each
// new page of its heap with a page fault. On the VMs portwarden was
// measured on a fault costs several microseconds; a cold apply of 1,000
// sources took some 450 of them in its heap, a third of its page faults.
// MADV_POPULATE_WRITE (Linux 5.14) maps a range in one call, at about a
// microsecond a page. Importing the package is all it takes; it does
// nothing elsewhere than on Linux, and nothing where the kernel refuses.
//
// It populates the first MiB above the heap's frontier, which holds the
// whole heap of a command that loads no policy, and stops at the end of
// the 4 MiB chunk the runtime mapped (it maps its heap a chunk at a
// time). Go 1.26 starts the heap at a random page of its first chunk
// (GOEXPERIMENT=randomizedheapbase64, there to make cgo programs harder
// to exploit); the Makefile builds portwarden, which has no cgo, without
// it, so that the heap starts at the chunk's beginning and the whole MiB
// is there to populate.
//
// The populated MiB counts as resident from the start: the peak RSS of
// --version went from 7 to 8 MiB (the CLI benchmark's GNU time).
//
// It helps only as early as it runs. Go initialises packages in the order
// of their import paths, each once its imports are, and this one imports
// only syscall and unsafe, so it runs about fifteenth, before os, time
// and every large package. An import of os, fmt or golang.org/x/sys/unix
// here would move it behind them.
package prefault
