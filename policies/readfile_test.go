package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The one reader behind policy, variables and list files refuses devices
// and files over its limit before reading them, and reads the rest.
func TestReadAdmitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.txt")
	if err := os.WriteFile(path, []byte("198.18.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(name string, limit int64) ([]byte, error) {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return readAdmitted(f, limit)
	}
	if data, err := read(path, 64); err != nil || string(data) != "198.18.0.1\n" {
		t.Errorf("a small regular file: %q, %v", data, err)
	}
	var r *fileRefusal
	if _, err := read(path, 4); !errors.As(err, &r) || r.Kind != "" || r.Size != 11 || !strings.Contains(err.Error(), "over the limit of 4 bytes") {
		t.Errorf("a file over the limit: %v", err)
	}
	if _, err := read("/dev/zero", 1<<30); !errors.As(err, &r) || r.Kind != "a device" {
		t.Errorf("/dev/zero: %v", err)
	}
}
