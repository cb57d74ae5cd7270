package policies

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDiagnosticsGolden loads every file in testdata/errors and compares its
// diagnostics, one per line ("file:line,col-col: Summary; Detail"), with
// the .golden file beside it. Regenerate with go test ./policies -update.
func TestDiagnosticsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.hcl*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, ".golden") {
			continue
		}
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, diags := LoadFS(fstest.MapFS{name: {Data: src}}, name, Options{})
			if len(diags) == 0 {
				t.Fatal("no diagnostics")
			}
			var b strings.Builder
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a source range: %s", FormatDiagnostic(d))
				}
				b.WriteString(FormatDiagnostic(d) + "\n")
			}
			golden := strings.TrimSuffix(strings.TrimSuffix(file, ".json"), ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("diagnostics differ from %s:\n--- got\n%s--- want\n%s", golden, b.String(), want)
			}
		})
	}
}
