package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Main is the TestMain of a suite on a control plane: run starts what the suite needs, runs
// m, and stops it again (its deferred calls run before the process exits); an error it
// returns is printed and fails the suite.
func Main(m *testing.M, run func(*testing.M) (int, error)) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}
