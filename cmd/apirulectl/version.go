package main

import (
	"fmt"
	"io"

	"github.com/apirule-operator/apirule-operator/internal/version"
)

// runVersion is `apirulectl version`: the build's identity, stamped as the manager's is
// (make build), else what Go recorded of the module and the checkout.
func runVersion(_ *invocation, _ []string, _ io.Reader, stdout, _ io.Writer) int {
	v := version.Get()
	fmt.Fprintf(stdout, "apirulectl %s\ncommit: %s\ngo: %s\n", v.Version, v.Commit, v.GoVersion)
	return exitOK
}
