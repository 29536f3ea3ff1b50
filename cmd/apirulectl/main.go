// Command apirulectl renders and validates APIRules offline, with no cluster: it prints the
// Istio objects the operator would apply, for review in GitOps pull requests.
//
//	apirulectl render   -f FILE [flags]   print the generated objects as YAML
//	apirulectl validate -f FILE [flags]   print every problem; exit 1 when there is an error
//
// FILE (or - for standard input) is a multi-document YAML with APIRules and what they
// reference: Services, Istio Gateways, and the mesh config ConfigMap for extAuth rules.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `apirulectl renders and validates APIRules offline.

Usage:
  apirulectl render   -f FILE [-f FILE...] [flags]   print the Istio objects the operator would apply
  apirulectl validate -f FILE [-f FILE...] [flags]   print every problem with its field path; exit 1 on an error

The files (- for standard input) hold APIRules and the objects they reference: Services, Istio
Gateways, and the mesh config ConfigMap (istio in istio-system) for extAuth rules. A
RenderOptions document (apiVersion apirulectl.apirule.io/v1) may set the operator options;
flags override it.

Flags:
`

// run is the command with its streams, so tests call it directly. It returns the exit code:
// 0 success, 1 problems found (validate) or blocking errors (render), 2 bad usage or input.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "render" && args[0] != "validate") {
		fmt.Fprint(stderr, usage)
		newFlags(stderr, &render.Options{}, &fileList{}).PrintDefaults()
		return 2
	}
	command := args[0]
	// The flags are parsed twice: first for the files, then, once the input's RenderOptions
	// are known, on top of them, so that flags override the input.
	opts := render.DefaultOptions()
	var files fileList
	if err := newFlags(stderr, &opts, &files).Parse(args[1:]); err != nil {
		return 2
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "apirulectl: -f FILE is required (use - for standard input)")
		return 2
	}

	var readers []io.Reader
	for _, file := range files {
		if file == "-" {
			readers = append(readers, stdin, strings.NewReader("\n---\n"))
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintln(stderr, "apirulectl:", err)
			return 2
		}
		defer f.Close()
		readers = append(readers, f, strings.NewReader("\n---\n"))
	}
	bundle, err := render.Load(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: %s: %v\n", files.String(), err)
		return 2
	}
	if len(bundle.APIRules) == 0 {
		fmt.Fprintf(stderr, "apirulectl: %s holds no APIRule\n", files.String())
		return 2
	}
	effective := render.DefaultOptions()
	if bundle.Options != nil {
		effective = *bundle.Options
	}
	if err := newFlags(io.Discard, &effective, &fileList{}).Parse(args[1:]); err != nil {
		return 2
	}
	results, err := render.Render(bundle, effective)
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: %s: %v\n", files.String(), err)
		return 2
	}

	failed := render.HasErrors(results)
	if command == "validate" {
		// validate also gives the warnings the admission webhook gives at kubectl apply
		// time (noAuth on every path, a JWKS over http, wildcard hosts), so a review sees them.
		for i := range results {
			if !results[i].Refused {
				results[i].Findings = append(results[i].Findings, check.Risky(results[i].APIRule)...)
			}
		}
		lines := render.FindingLines(results)
		for _, line := range lines {
			fmt.Fprintln(stdout, line)
		}
		switch {
		case failed:
			return 1
		case len(lines) == 0:
			fmt.Fprintf(stdout, "%d APIRules valid\n", len(results))
		default:
			fmt.Fprintf(stdout, "%d APIRules valid, with the warnings above\n", len(results))
		}
		return 0
	}

	lines := render.FindingLines(results)

	for _, line := range lines {
		fmt.Fprintln(stderr, line)
	}
	out, err := render.YAML(results)
	if err != nil {
		fmt.Fprintln(stderr, "apirulectl:", err)
		return 2
	}
	if _, err := stdout.Write(out); err != nil {
		return 2
	}
	if failed {
		fmt.Fprintln(stderr, "apirulectl: APIRules with errors generate nothing; the output holds only the others")
		return 1
	}
	return 0
}

// fileList collects repeated -f flags.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func newFlags(stderr io.Writer, opts *render.Options, files *fileList) *flag.FlagSet {
	flags := flag.NewFlagSet("apirulectl", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Var(files, "f", "input file, or - for standard input; repeat to combine files (APIRules and their context)")
	opts.BindFlags(flags)
	return flags
}
