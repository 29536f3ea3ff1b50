package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time with
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/apirulectl
//
// Unset, they come from the build information Go records in the binary: the module version
// for `go install ...@version`, the VCS revision for a build in a git checkout.
var (
	version string
	commit  string
)

// buildInfo returns the version and commit of this binary.
func buildInfo() (v, c string) {
	v, c = version, commit
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orUnknown(v), orUnknown(c)
	}
	if v == "" {
		v = info.Main.Version
	}
	if c == "" {
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				c = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		// A binary built from a changed tree is not that commit.
		if c != "" && modified {
			c += "-dirty"
		}
	}
	return orUnknown(v), orUnknown(c)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// runVersion is `apirulectl version`.
func runVersion(_ *invocation, _ []string, _ io.Reader, stdout, _ io.Writer) int {
	v, c := buildInfo()
	fmt.Fprintf(stdout, "apirulectl %s\ncommit: %s\ngo: %s\n", v, c, runtime.Version())
	return exitOK
}
