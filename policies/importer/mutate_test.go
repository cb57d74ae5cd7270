package importer

import (
	"math/rand"
	"os"
	"testing"
	"time"
)

// TestMutatedInputs parses randomly damaged fixtures with every parser (a
// fixed seed, so failures repeat): no panic, no hang, and whatever parses
// builds a policy.
func TestMutatedInputs(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var seeds [][]byte
	for _, path := range []string{"testdata/iptables/rules.v4", "testdata/ufw/user.rules", "testdata/nftables/ruleset.json", "testdata/firewalld/public.xml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	for n := 0; n < 300; n++ {
		d := append([]byte(nil), seeds[r.Intn(len(seeds))]...)
		for k := 0; k < 1+r.Intn(4); k++ {
			i := r.Intn(len(d))
			switch r.Intn(3) {
			case 0:
				d[i] = byte(r.Intn(256))
			case 1:
				d = append(d[:i], d[min(len(d), i+1+r.Intn(8)):]...)
			default:
				d[i] = "0123456789:/,-! "[r.Intn(16)]
			}
		}
		for _, from := range Sources {
			done := make(chan error, 1)
			go func() {
				im, err := Parse(from, []File{{Name: "f", Data: d}})
				if err == nil {
					_, _, err = im.Build()
					done <- err
					return
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: %v\n%s", from, err, d)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no answer in 10s for:\n%s", from, d)
			}
		}
	}
}
