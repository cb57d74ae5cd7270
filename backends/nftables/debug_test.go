package nftables

import (
	"fmt"
	"reflect"

	"github.com/google/nftables"
)

func debugDiff(want []ruleSpec, got []*nftables.Rule) string {
	out := ""
	for i := range want {
		if i >= len(got) {
			break
		}
		for j := range want[i].exprs {
			if j >= len(got[i].Exprs) {
				out += fmt.Sprintf("rule %d: missing expr %d\n", i, j)
				break
			}
			if !reflect.DeepEqual(canonical(want[i].exprs[j]), canonical(got[i].Exprs[j])) {
				out += fmt.Sprintf("rule %d expr %d: want %#v got %#v\n", i, j, canonical(want[i].exprs[j]), canonical(got[i].Exprs[j]))
			}
		}
	}
	return out
}
