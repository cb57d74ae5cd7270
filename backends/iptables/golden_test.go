package iptables

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRenderGolden keeps the rendered restore file of the sample ruleset
// in testdata for review; go test -run RenderGolden -update rewrites it.
func TestRenderGolden(t *testing.T) {
	got, err := Render(sampleRuleset())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", t.Name(), "sample.golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run RenderGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("Render differs from %s (run with -update after checking):\n%s", path, got)
	}
}

// TestKernelRenderedFilesLoad loads the files Render writes with the
// restore binaries, as a user persisting them would, and expects the
// backend to read back exactly the ruleset, with nothing to change.
func TestKernelRenderedFilesLoad(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		rs := sampleRuleset()
		v4, v6, err := RenderFamilies(rs)
		if err != nil {
			t.Fatal(err)
		}
		sets, err := RenderSets(rs)
		if err != nil {
			t.Fatal(err)
		}
		ipsetCLI(t, l.server.Path(), sets, "restore")
		x := execRunner{variant: v, nsPath: l.server.Path()}
		for fam, text := range [2]string{v4, v6} {
			if err := x.restore(context.Background(), family(fam), text); err != nil {
				t.Fatal(err)
			}
		}
		p, err := l.b.Plan(context.Background(), rs)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Empty() {
			t.Fatalf("after loading the rendered files the plan is not empty: %+v drift %q", p.Diff, p.Current.Drift)
		}
	})
}
