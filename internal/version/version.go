// Package version says which build of the operator runs: the release version and commit the
// build was stamped with (-ldflags -X, as the Makefile and the Dockerfile do), else what the
// Go toolchain recorded of the module and its VCS state.
package version

import (
	"runtime"
	"runtime/debug"
)

// Stamped at build time with -ldflags "-X <package>.version=... -X <package>.commit=...".
var (
	version = ""
	commit  = ""
)

// Info identifies a build.
type Info struct {
	Version   string
	Commit    string
	GoVersion string
}

// Get returns the build's identity; fields that nothing recorded are "unknown".
func Get() Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if build, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && build.Main.Version != "" && build.Main.Version != "(devel)" {
			info.Version = build.Main.Version
		}
		if info.Commit == "" {
			modified := false
			for _, s := range build.Settings {
				switch s.Key {
				case "vcs.revision":
					info.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			// A binary built from a changed tree is not that commit.
			if info.Commit != "" && modified {
				info.Commit += "-dirty"
			}
		}
	}
	if info.Version == "" {
		info.Version = "unknown"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String is the one line --version prints.
func (i Info) String() string {
	return "version " + i.Version + ", commit " + i.Commit + ", " + i.GoVersion
}
