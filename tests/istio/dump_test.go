package istio_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/apirule-operator/apirule-operator/tests/istio/harness"
)

var dumpCase = flag.String("dump", "", "write the gateway and sidecar xDS of this case as JSON to $TMPDIR/<case>.xds.json")

// TestDumpXDS writes the generated xDS of one case for reading; it does nothing unless
// -dump names a case.
func TestDumpXDS(t *testing.T) {
	if *dumpCase == "" {
		t.Skip("set -dump <case> to write the xDS of a case")
	}
	dir := goldenDir
	c, err := harness.LoadCase(dir, *dumpCase)
	if err != nil {
		c, err = harness.LoadCase(fixtureDir, *dumpCase)
		if err != nil {
			t.Fatal(err)
		}
	}
	env := harness.NewEnv(t, c)
	out := "{\n"
	m := protojson.MarshalOptions{Multiline: true, Indent: " "}
	for _, l := range env.Gateway.Listeners {
		out += fmt.Sprintf("\"gateway listener %s\": %s,\n", l.GetName(), m.Format(l))
	}
	for _, r := range env.Gateway.Routes {
		out += fmt.Sprintf("\"gateway route %s\": %s,\n", r.GetName(), m.Format(r))
	}
	for name, b := range env.Backends {
		for _, l := range b.Proxy.Listeners {
			if l.GetName() == "virtualInbound" {
				out += fmt.Sprintf("\"sidecar %s listener %s\": %s,\n", name, l.GetName(), m.Format(l))
			}
		}
	}
	out += "}\n"
	path := filepath.Join(os.TempDir(), *dumpCase+".xds.json")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
