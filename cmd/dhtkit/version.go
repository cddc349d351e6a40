package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is what `dhtkit version` and `dhtkit --version` print: the
// module version, and the commit the binary was built from as the go
// command recorded it (debug.ReadBuildInfo's vcs settings; a build from a
// clone has them, `go run` and `go test` binaries do not).
type version struct {
	Version  string `json:"version"`            // the module version; "(devel)" for a build from a clone
	Commit   string `json:"commit,omitempty"`   // vcs.revision
	Time     string `json:"time,omitempty"`     // vcs.time, the commit's time
	Modified bool   `json:"modified,omitempty"` // vcs.modified: built with uncommitted changes
	Go       string `json:"go"`
}

func buildVersion() version {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version{Version: "unknown", Go: "unknown"}
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) version {
	v := version{Version: bi.Main.Version, Go: bi.GoVersion}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is one line: "(devel) commit 435a751… (modified) 2026-12-05T10:00:00Z go1.26".
func (v version) String() string {
	s := v.Version
	if v.Commit != "" {
		s += " commit " + v.Commit
		if v.Modified {
			s += " (modified)"
		}
		if v.Time != "" {
			s += " " + v.Time
		}
	} else {
		s += " commit unknown"
	}
	return s + " " + v.Go
}

func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from and the Go version",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(v)
			}
			_, err := fmt.Fprintln(g.stdout, "dhtkit", v)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
