package policies

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Options are the variable values given from outside the policy. Precedence,
// weakest first: a variable's default, Vars (--var), VarFiles (--var-file),
// then PORTWARDEN_VAR_<name> from Environ.
type Options struct {
	Vars     map[string]string
	VarFiles []string
	Environ  []string
}

// EnvPrefix starts the environment variables that set policy variables.
const EnvPrefix = "PORTWARDEN_VAR_"

// Load loads a policy file, or every *.hcl and *.hcl.json file of a
// directory as one policy. The Policy is returned even with errors, with
// whatever could be decoded, and Files filled for rendering diagnostics.
func Load(p string, opts Options) (*Policy, hcl.Diagnostics) {
	info, err := os.Stat(p)
	if err != nil {
		return &Policy{Files: map[string]*hcl.File{}}, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Cannot read policy",
			Detail: fmt.Sprintf("%s: %v. Pass the policy file or directory with --policy.", p, unwrapPathErr(err)),
		}}
	}
	dir, name := p, "."
	if !info.IsDir() {
		dir, name = filepath.Dir(p), filepath.Base(p)
	}
	// Diagnostics name files as the user wrote the path.
	display := func(n string) string { return filepath.Join(dir, filepath.FromSlash(n)) }
	return loadFS(os.DirFS(dir), name, opts, display, osListReader)
}

// LoadFS is Load over a file system: tests and the fuzzer need no files.
// name is a file or a directory in fsys.
func LoadFS(fsys fs.FS, name string, opts Options) (*Policy, hcl.Diagnostics) {
	return loadFS(fsys, name, opts, func(n string) string { return n }, fsListReader(fsys))
}

func loadFS(fsys fs.FS, name string, opts Options, display func(string) string, readList listReader) (*Policy, hcl.Diagnostics) {
	pol := &Policy{Files: map[string]*hcl.File{}}
	names, diags := policyFiles(fsys, name)
	if diags.HasErrors() {
		return pol, diags
	}
	parser := hclparse.NewParser()
	var bodies []*hcl.File
	for _, n := range names {
		f, d := parseFile(parser, fsys, n, display(n))
		diags = append(diags, d...)
		if f != nil {
			pol.Files[display(n)] = f
			bodies = append(bodies, f)
		}
	}
	varFiles, d := loadVarFiles(parser, opts.VarFiles)
	diags = append(diags, d...)
	for n, f := range parser.Files() {
		if _, ok := pol.Files[n]; !ok && f != nil {
			pol.Files[n] = f
		}
	}
	if diags.HasErrors() {
		return pol, diags
	}
	d = decode(pol, bodies, opts, varFiles, readList)
	return pol, append(diags, d...)
}

func policyFiles(fsys fs.FS, name string) ([]string, hcl.Diagnostics) {
	name = path.Clean(name)
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Cannot read policy",
			Detail: fmt.Sprintf("%s: %v. Pass the policy file or directory with --policy.", name, unwrapPathErr(err)),
		}}
	}
	if !info.IsDir() {
		return []string{name}, nil
	}
	entries, err := fs.ReadDir(fsys, name)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy directory", Detail: err.Error()}}
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && isPolicyFile(e.Name()) {
			out = append(out, path.Join(name, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "No policy files",
			Detail: fmt.Sprintf("The directory %s has no *.hcl or *.hcl.json file. Pass a policy file or directory with --policy.", name),
		}}
	}
	sort.Strings(out)
	return out, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// isPolicyFile reports whether a directory entry is part of a policy.
func isPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".hcl") || strings.HasSuffix(name, ".hcl.json")
}

func parseFile(parser *hclparse.Parser, fsys fs.FS, name, shown string) (*hcl.File, hcl.Diagnostics) {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy file", Detail: fmt.Sprintf("%s: %v.", shown, unwrapPathErr(err))}}
	}
	if strings.HasSuffix(name, ".json") {
		return parser.ParseJSON(src, shown)
	}
	return parser.ParseHCL(src, shown)
}

func loadVarFiles(parser *hclparse.Parser, names []string) ([]*hcl.File, hcl.Diagnostics) {
	var files []*hcl.File
	var diags hcl.Diagnostics
	for _, n := range names {
		src, err := os.ReadFile(n)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read variables file", Detail: fmt.Sprintf("%s: %v. Check the --var-file path.", n, unwrapPathErr(err))})
			continue
		}
		var f *hcl.File
		var d hcl.Diagnostics
		if strings.HasSuffix(n, ".json") {
			f, d = parser.ParseJSON(src, n)
		} else {
			f, d = parser.ParseHCL(src, n)
		}
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
		}
	}
	return files, diags
}
