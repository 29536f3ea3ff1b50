package istio_test

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/simulation"

	"github.com/apirule-operator/apirule-operator/tests/istio/harness"
)

// goldenDir holds the translation golden cases; this module reads them as data.
var goldenDir = filepath.Join("..", "..", "internal", "translate", "testdata")

// fixtureDir holds hand-written Istio cases for behaviour the translator does not generate
// yet; they test the harness itself end to end.
const fixtureDir = "testdata"

var runCase = flag.String("case", "", "run only the case with this name")

func loadCases(t *testing.T, dir string) []harness.Case {
	t.Helper()
	cases, err := harness.LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no cases in %s", dir)
	}
	return cases
}

// Every case that generates objects must say what requests get through them; a case that
// generates nothing has nothing to route and must not pretend otherwise.
func TestEveryGoldenCaseHasExpectations(t *testing.T) {
	for _, c := range loadCases(t, goldenDir) {
		switch {
		case len(c.Output) > 0 && c.ExpectPath == "":
			t.Errorf("%s generates %d objects but has no %s.expect.yaml; add requests that exercise them (docs/verification.md)", c.Name, len(c.Output), c.Name)
		case len(c.Output) == 0 && c.ExpectPath != "":
			t.Errorf("%s generates nothing, so %s has nothing to route; remove it", c.Name, c.ExpectPath)
		}
	}
}

// Every generated object passes istiod's validating webhook, warnings included.
func TestOutputsPassIstioValidation(t *testing.T) {
	v, err := harness.IstioValidator()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range []string{goldenDir, fixtureDir} {
		for _, c := range loadCases(t, dir) {
			for _, d := range c.Output {
				if !d.IsIstioConfig() {
					continue
				}
				if err := v.Validate(d); err != nil {
					t.Errorf("%s: %s: %v", c.Name, d.Ref(), err)
				}
				n++
			}
		}
	}
	t.Logf("%d objects admitted by Istio's validation webhook", n)
}

func TestGoldenExpectations(t *testing.T) { runExpectations(t, goldenDir) }

func TestFixtureExpectations(t *testing.T) { runExpectations(t, fixtureDir) }

// runExpectations decides every request of every case by the xDS istiod generates for it.
func runExpectations(t *testing.T, dir string) {
	total, known, cases := 0, 0, 0
	for _, c := range loadCases(t, dir) {
		if *runCase != "" && c.Name != *runCase {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Output) == 0 {
				t.Skipf("%s generates no objects (only findings): nothing to route", c.Name)
			}
			if c.ExpectPath == "" {
				t.Skip("no expectations (TestEveryGoldenCaseHasExpectations reports this)")
			}
			exp, err := harness.LoadExpectations(c.ExpectPath)
			if err != nil {
				t.Fatal(err)
			}
			cases++
			env := harness.NewEnv(t, c)
			// Istio's own simulation of each gateway request, run here because it may only
			// fail the test that built the environment.
			sims := map[string]*simulation.Result{}
			for _, r := range exp.Requests {
				sims[r.Name] = env.SimulateGateway(r)
			}
			for _, r := range exp.Requests {
				total++
				if r.KnownFailure != "" {
					known++
				}
				t.Run(r.Name, func(t *testing.T) {
					res, err := env.Run(r)
					if err != nil {
						t.Fatalf("the harness cannot decide this request: %v", err)
					}
					bad := harness.Check(r, res)
					// A disagreement with Istio's simulation is a harness defect, never a
					// known failure of the translator.
					if cross := env.CrossCheck(res, sims[r.Name]); len(cross) > 0 {
						t.Errorf("%s\n  %s", strings.Join(cross, "; "), strings.Join(res.Trace, "\n  "))
					}
					trace := strings.Join(res.Trace, "\n  ")
					switch {
					case r.KnownFailure != "" && len(bad) == 0:
						t.Errorf("marked knownFailure (%s) but now passes: remove the mark", r.KnownFailure)
					case r.KnownFailure != "":
						t.Logf("KNOWN FAILURE (%s): %s\n  %s", r.KnownFailure, strings.Join(bad, "; "), trace)
					case len(bad) > 0:
						t.Errorf("%s %s%s: %s\n  %s", r.Method, r.Host, r.Path, strings.Join(bad, "; "), trace)
					}
				})
			}
		})
	}
	t.Logf("%s: %d cases, %d requests, %d marked as known failures", dir, cases, total, known)
}
