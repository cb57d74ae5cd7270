package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdJSONMask rewrites a JSON file with the values of the named keys, at any
// depth, replaced by "*", so the golden files of the JSON contract
// (docs/json.md) hold every field but not times, durations or hosts' names.
//
//	jsonmask FILE KEY...
func cmdJSONMask(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: jsonmask FILE KEY...")
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		ts.Fatalf("%s is not JSON: %v", args[0], err)
	}
	v = maskJSON(v, args[1:])
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	ts.Check(enc.Encode(v))
	ts.Check(os.WriteFile(path, out.Bytes(), 0o644))
}

func maskJSON(v any, keys []string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if slices.Contains(keys, k) {
				v[k] = "*"
			} else {
				v[k] = maskJSON(x, keys)
			}
		}
	case []any:
		for i := range v {
			v[i] = maskJSON(v[i], keys)
		}
	}
	return v
}
