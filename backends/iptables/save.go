package iptables

import (
	"fmt"
	"strconv"
	"strings"
)

// savedRule is one rule of iptables-save output.
type savedRule struct {
	chain   string
	line    string // "-A CHAIN ...", as printed, counters removed
	args    []string
	packets uint64
	bytes   uint64
}

// savedTable is the filter table as iptables-save -c prints it.
type savedTable struct {
	chains []string               // every chain, in the order printed
	rules  map[string][]savedRule // by chain, in order
}

// parseSave reads the filter table from iptables-save [-c] output. Other
// tables, if present, are skipped.
func parseSave(text string) (savedTable, error) {
	t := savedTable{rules: map[string][]savedRule{}}
	inFilter := false
	for n, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			inFilter = line == "*filter"
			continue
		case !inFilter:
			continue
		case line == "COMMIT":
			inFilter = false
			continue
		case strings.HasPrefix(line, ":"):
			fields := strings.Fields(line[1:])
			if len(fields) == 0 {
				return t, fmt.Errorf("iptables-save line %d: empty chain declaration", n+1)
			}
			t.chains = append(t.chains, fields[0])
			continue
		}
		var r savedRule
		if strings.HasPrefix(line, "[") {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return t, fmt.Errorf("iptables-save line %d: unterminated counters: %s", n+1, line)
			}
			pk, by, ok := strings.Cut(line[1:end], ":")
			if !ok {
				return t, fmt.Errorf("iptables-save line %d: malformed counters: %s", n+1, line)
			}
			var err1, err2 error
			r.packets, err1 = strconv.ParseUint(pk, 10, 64)
			r.bytes, err2 = strconv.ParseUint(by, 10, 64)
			if err1 != nil || err2 != nil {
				return t, fmt.Errorf("iptables-save line %d: malformed counters: %s", n+1, line)
			}
			line = strings.TrimSpace(line[end+1:])
		}
		if chain, ok := foreignChain(line); ok {
			// Only INPUT and owned chains are ever looked into; other
			// chains' rules are kept as text, not taken apart.
			r.chain, r.line = chain, line
			t.rules[chain] = append(t.rules[chain], r)
			continue
		}
		args, err := SplitArgs(line)
		if err != nil {
			return t, fmt.Errorf("iptables-save line %d: %w", n+1, err)
		}
		if len(args) < 2 || args[0] != "-A" {
			return t, fmt.Errorf("iptables-save line %d: expected a rule (-A CHAIN ...): %s", n+1, line)
		}
		r.chain, r.args, r.line = args[1], args[2:], strings.Join(strings.Fields(line), " ")
		t.rules[r.chain] = append(t.rules[r.chain], r)
	}
	return t, nil
}

// SplitArgs splits a rule the way iptables-restore does: on blanks, with
// double quotes grouping and backslash escaping inside them. The importer
// reads iptables-save files with it too.
func SplitArgs(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t'):
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}

// foreignChain reports the chain of a rule line that belongs to neither
// INPUT nor portwarden.
func foreignChain(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "-A ")
	if !ok {
		return "", false
	}
	chain, _, _ := strings.Cut(rest, " ")
	if chain == "" || chain == "INPUT" || isOwnedChain(chain) {
		return "", false
	}
	return chain, true
}
