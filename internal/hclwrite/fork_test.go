package hclwrite_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	upstream "github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/portwarden/portwarden/internal/hclwrite"
	"github.com/rogpeppe/go-internal/txtar"
	"github.com/zclconf/go-cty/cty"
)

// TestFormatMatchesUpstream holds the copy to the package it was copied
// from: every policy in the repository, and the policies inside the CLI
// scripts, format byte for byte as upstream formats them.
func TestFormatMatchesUpstream(t *testing.T) {
	inputs := map[string][]byte{
		"unaligned": []byte("a=1\nbbb = [1,2,\n3]\n# c\nblock \"x\" {\nk=\"v\" # why\nlonger_key = { a = 1, b = \"é\" }\n}\n"),
		"heredoc":   []byte("a = <<EOT\n  kept\nEOT\nb=\"${x}\"\n"),
	}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		switch {
		case strings.HasSuffix(path, ".hcl"):
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			inputs[path] = data
		case strings.HasSuffix(path, ".txtar"):
			ar, err := txtar.ParseFile(path)
			if err != nil {
				return err
			}
			for _, f := range ar.Files {
				if strings.HasSuffix(f.Name, ".hcl") {
					inputs[path+":"+f.Name] = f.Data
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 40 {
		t.Fatalf("found only %d policies to format; did the repository move?", len(inputs))
	}
	for name, src := range inputs {
		if got, want := hclwrite.Format(src), upstream.Format(src); !bytes.Equal(got, want) {
			t.Errorf("%s: the copy formats differently from upstream\ngot:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

// TestBuilderMatchesUpstream checks the generating half, which import
// uses, the same way.
func TestBuilderMatchesUpstream(t *testing.T) {
	ours := hclwrite.NewEmptyFile()
	theirs := upstream.NewEmptyFile()
	for _, v := range []struct {
		name string
		val  cty.Value
	}{
		{"port", cty.NumberIntVal(27)},
		{"name", cty.StringVal("quote \" and ${interp} and %{dir}")},
		{"list", cty.TupleVal([]cty.Value{cty.StringVal("198.18.0.0/15"), cty.StringVal("2001:2::/48")})},
	} {
		ours.Body().AppendNewBlock("expose", []string{v.name}).Body().SetAttributeValue(v.name, v.val)
		theirs.Body().AppendNewBlock("expose", []string{v.name}).Body().SetAttributeValue(v.name, v.val)
	}
	if got, want := ours.Bytes(), theirs.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("the copy builds differently from upstream\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// FuzzFormatMatchesUpstream: whatever the input, the copy formats it as
// upstream does.
func FuzzFormatMatchesUpstream(f *testing.F) {
	f.Add([]byte("a=1\nb = [1,2,\n3]\n"))
	f.Add([]byte("expose \"nscp\" {\nports=[27]\nallow {\nfrom=[\"198.18.0.0/15\"] # office\n}\n}\n"))
	f.Add([]byte("x = <<EOT\n  y\nEOT\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if got, want := hclwrite.Format(src), upstream.Format(src); !bytes.Equal(got, want) {
			t.Errorf("the copy formats %q as %q, upstream as %q", src, got, want)
		}
	})
}
