package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// within fails the test when f has not returned after a few seconds: the
// open of a named pipe nobody writes to would wait forever.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still blocked after 5s", what)
	}
}

// No list file path can block a load: a named pipe is refused at once,
// as a policy file is, whoever runs (with or without the trust checks),
// and a directory is called one.
func TestListFileNeverBlocks(t *testing.T) {
	for _, tc := range []struct {
		kind string
		make func(p string) error
	}{
		{"a named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o755) }},
	} {
		for _, trust := range []FileTrust{TrustRefuse, TrustOff} {
			t.Run(fmt.Sprintf("%s/trust=%d", tc.kind, trust), func(t *testing.T) {
				_, policy, lists := listTree(t)
				p := filepath.Join(lists, "customers.txt")
				os.Remove(p)
				if err := tc.make(p); err != nil {
					t.Fatal(err)
				}
				var diags hcl.Diagnostics
				within(t, "Load", func() { _, diags = Load(policy, Options{Trust: trust}) })
				want := "t/lists/customers.txt is not a regular file: it is " + tc.kind + "."
				if !diags.HasErrors() || diags[0].Summary != "Cannot read list file" || !strings.Contains(diags[0].Detail, want) {
					t.Fatalf("%v", diags)
				}
				// The same through a file system (LoadFS of an os.DirFS).
				within(t, "LoadFS", func() { _, diags = LoadFS(os.DirFS(policy), "policy.hcl", Options{}) })
				if !diags.HasErrors() || diags[0].Detail != "lists/customers.txt is not a regular file: it is "+tc.kind+". members_file names a regular file of addresses, one a line, relative to the policy file that names it." {
					t.Fatalf("LoadFS: %v", diags)
				}
				// And the digest that tells an unchanged policy.
				within(t, "InputDigest", func() {
					if _, _, err := InputDigest(policy, Options{}, []string{p}); err == nil {
						t.Error("a digest of a list that is not a regular file")
					}
				})
			})
		}
	}
}

// Nor can a variables file, or a policy file InputDigest lists.
func TestVarFileAndDigestNeverBlock(t *testing.T) {
	_, policy, _ := listTree(t)
	fifo := filepath.Join(t.TempDir(), "vars.hcl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	var diags hcl.Diagnostics
	within(t, "Load with a named pipe as --var-file", func() {
		_, diags = Load(policy, Options{Trust: TrustOff, VarFiles: []string{fifo}})
	})
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "vars.hcl is a named pipe, not a regular file") {
		t.Fatalf("%v", diags)
	}
	if err := syscall.Mkfifo(filepath.Join(policy, "more.hcl"), 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, "InputDigest of a directory holding a named pipe", func() {
		if _, _, err := InputDigest(policy, Options{}, nil); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("err = %v", err)
		}
	})
}
