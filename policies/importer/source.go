package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Sources are the formats import reads.
var Sources = []string{"iptables", "nftables", "ufw", "firewalld"}

// Parse reads files in the format from.
func Parse(from string, files []File) (*Import, error) {
	switch from {
	case "iptables":
		return ParseIPTables(files)
	case "nftables":
		return ParseNftables(files)
	case "ufw":
		return ParseUFW(files)
	case "firewalld":
		return ParseFirewalld(files)
	}
	return nil, fmt.Errorf("unknown source %q: choose iptables, nftables, ufw or firewalld", from)
}

// maxInput bounds one input file: rulesets are text, not data sets.
const maxInput = 64 << 20

// ReadFiles reads path: a file, every regular file of a directory (sorted
// by name), or standard input for "-".
func ReadFiles(path string, stdin io.Reader) ([]File, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		if len(data) > maxInput {
			return nil, fmt.Errorf("standard input is larger than %d MiB", maxInput>>20)
		}
		return []File{{Name: "stdin", Data: data}}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	names := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, e := range entries {
			switch {
			case e.Type().IsRegular():
				names = append(names, filepath.Join(path, e.Name()))
			case e.IsDir() && (e.Name() == "zones" || e.Name() == "services"):
				// firewalld's layout: /etc/firewalld/{zones,services}/*.xml
				sub, err := os.ReadDir(filepath.Join(path, e.Name()))
				if err != nil {
					return nil, err
				}
				for _, s := range sub {
					if s.Type().IsRegular() {
						names = append(names, filepath.Join(path, e.Name(), s.Name()))
					}
				}
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("%s holds no files", path)
		}
	}
	var out []File
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			return nil, err
		}
		if st.Size() > maxInput {
			return nil, fmt.Errorf("%s is larger than %d MiB: is it a ruleset?", n, maxInput>>20)
		}
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: n, Data: data})
	}
	return out, nil
}

// ReadLive reads the running firewall's rules with its own tools, when no
// file is given.
func ReadLive(ctx context.Context, from string) ([]File, error) {
	switch from {
	case "iptables":
		var out []File
		for _, tool := range []string{"iptables-save", "ip6tables-save"} {
			data, err := run(ctx, tool)
			if err != nil {
				return nil, err
			}
			out = append(out, File{Name: tool, Data: data})
		}
		if _, err := exec.LookPath("ipset"); err == nil {
			if data, err := run(ctx, "ipset", "save"); err == nil && len(bytes.TrimSpace(data)) > 0 {
				out = append(out, File{Name: "ipset save", Data: data})
			}
		}
		return out, nil
	case "ufw":
		return readExisting([]string{"/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/default/ufw"})
	case "firewalld":
		// /etc overrides the zones and services firewalld ships.
		byName := map[string]string{}
		var order []string
		for _, dir := range []string{"/usr/lib/firewalld/zones", "/usr/lib/firewalld/services", "/etc/firewalld/zones", "/etc/firewalld/services"} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".xml" {
					continue
				}
				key := filepath.Base(dir) + "/" + e.Name()
				if _, ok := byName[key]; !ok {
					order = append(order, key)
				}
				byName[key] = filepath.Join(dir, e.Name())
			}
		}
		paths := []string{"/etc/firewalld/firewalld.conf"}
		for _, k := range order {
			paths = append(paths, byName[k])
		}
		return readExisting(paths)
	}
	return nil, fmt.Errorf("--from %s needs a file or directory to read", from)
}

// readExisting reads the files of paths that exist; none is an error.
func readExisting(paths []string) ([]File, error) {
	var out []File
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: p, Data: data})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("none of %s exists: is it installed here? Give the files to read", strings.Join(paths, ", "))
	}
	return out, nil
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s (reading the live rules needs root)", cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
