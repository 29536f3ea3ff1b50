package version

import (
	"runtime"
	"testing"
)

func TestStampedVersionWins(t *testing.T) {
	version, commit = "1.2.3", "abc123"
	t.Cleanup(func() { version, commit = "", "" })
	got := Get()
	if got.Version != "1.2.3" || got.Commit != "abc123" || got.GoVersion != runtime.Version() {
		t.Errorf("got %+v", got)
	}
	if s := got.String(); s != "version 1.2.3, commit abc123, "+runtime.Version() {
		t.Errorf("String() = %q", s)
	}
}

func TestUnstampedBuildSaysUnknown(t *testing.T) {
	// A test binary records no module version and no VCS revision.
	if got := Get(); got.Version != "unknown" || got.Commit != "unknown" {
		t.Errorf("got %+v", got)
	}
}
