package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/spf13/cobra"
)

// version and commit are set at build time (make build: git describe and
// the commit); otherwise the commit comes from the Go build info if any.
var (
	version = "dev"
	commit  = "unknown"
)

// Saved plans name the binary that wrote them, and apply refuses a plan
// another build wrote (safeapply.Binary adds the Go build ID, which tells
// apart builds that both say "dev"). Asked only when a plan is saved or
// read.
func init() {
	safeapply.SetBinary(func() (string, string) {
		v := versionInfo()
		if v.Modified {
			v.Commit += "+modified"
		}
		return v.Version, v.Commit
	})
}

type versionJSON struct {
	FormatVersion int                 `json:"format_version"`
	Version       string              `json:"version"`
	Commit        string              `json:"commit"`
	CommitTime    string              `json:"commit_time,omitempty"`
	Modified      bool                `json:"modified"`
	GoVersion     string              `json:"go_version"`
	Platform      string              `json:"platform"`
	Backends      []auto.Availability `json:"backends"`
}

func versionInfo() versionJSON {
	v := versionJSON{FormatVersion: formatVersion, Version: version, Commit: commit, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Version, commit, Go version and the backends that work here",
		Example: `  portwarden version
  portwarden version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versionInfo()
			v.Backends = auto.Available()
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, v)
			}
			commit := v.Commit
			if v.Modified {
				commit += " (modified)"
			}
			fmt.Fprintf(w, "portwarden %s\ncommit:   %s\ngo:       %s %s\n", v.Version, commit, v.GoVersion, v.Platform)
			for _, b := range v.Backends {
				state := "available"
				if !b.Available {
					state = "not available"
				}
				fmt.Fprintf(w, "backend:  %s %s", b.Backend, state)
				if b.Detail != "" {
					fmt.Fprintf(w, " (%s)", b.Detail)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
}
