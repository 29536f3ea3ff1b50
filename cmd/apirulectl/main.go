// Command apirulectl runs the operator's admission, checks and translation without the
// operator: offline on files, for review in GitOps pull requests, or against a cluster.
//
//	apirulectl render   -f FILE [flags]            print the generated objects
//	apirulectl validate -f FILE [flags]            print every problem; exit 1 when there is an error
//	apirulectl validate --kubeconfig PATH [flags]  the same for the APIRules of a cluster
//	apirulectl convert  -f FILE [--strict]         turn Kyma APIRules into gateway.apirule.io/v2
//
// FILE (or - for standard input) is a multi-document YAML with APIRules and what they
// reference: Services, Istio Gateways, and the mesh config ConfigMap for extAuth rules.
// `apirulectl --help` lists every command and flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0
	exitFindings = 1 // an APIRule has an error (render, validate) or, for convert, see convert.go
	exitUsage    = 2 // bad usage or unreadable input
)

// run is the command with its streams, so tests call it directly. It returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, helpText())
		return exitUsage
	}
	name := args[0]
	if name == "help" || isHelp(name) {
		fmt.Fprint(stdout, helpText())
		return exitOK
	}
	cmd, ok := lookupCommand(name)
	if !ok {
		return usageError(stderr, "unknown command %q", name)
	}
	inv := newInvocation()
	flags := cmd.flags(inv)
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, helpText())
			return exitOK
		}
		return usageError(stderr, "%s: %v", name, err)
	}
	inv.args = flags.Args()
	// Parsing stops at the first argument (completion's shell): a help flag after it still
	// asks for help.
	if slices.ContainsFunc(inv.args, isHelp) {
		fmt.Fprint(stdout, helpText())
		return exitOK
	}
	if cmd.positional == "" && len(inv.args) > 0 {
		return usageError(stderr, "%s: unexpected argument %q (every input is a flag; files go with -f)", name, inv.args[0])
	}
	return cmd.run(inv, args[1:], stdin, stdout, stderr)
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// usageError reports bad usage on stderr, with where to find the complete usage.
func usageError(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "apirulectl: "+format+"\n", a...)
	fmt.Fprintln(stderr, "Run 'apirulectl --help' for every command and flag.")
	return exitUsage
}

// readBundle reads and decodes the -f files, in order.
func readBundle(files fileList, stdin io.Reader, stderr io.Writer) (*render.Bundle, int) {
	if len(files) == 0 {
		return nil, usageError(stderr, "-f FILE is required (use - for standard input)")
	}
	readers, closeAll, err := openFiles(files, stdin)
	defer closeAll()
	if err != nil {
		fmt.Fprintln(stderr, "apirulectl:", err)
		return nil, exitUsage
	}
	bundle, err := render.Load(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: %s: %v\n", files.String(), err)
		return nil, exitUsage
	}
	if len(bundle.APIRules) == 0 {
		fmt.Fprintf(stderr, "apirulectl: %s holds no APIRule\n", files.String())
		return nil, exitUsage
	}
	return bundle, exitOK
}

// openFiles opens the files as one stream of documents: a separator after each file keeps
// the last document of one from running into the first of the next.
func openFiles(files fileList, stdin io.Reader) ([]io.Reader, func(), error) {
	var readers []io.Reader
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	for _, file := range files {
		if file == "-" {
			readers = append(readers, stdin, strings.NewReader("\n---\n"))
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, closeAll, err
		}
		closers = append(closers, f)
		readers = append(readers, f, strings.NewReader("\n---\n"))
	}
	return readers, closeAll, nil
}

// effectiveOptions are the bundle's RenderOptions with the command line's flags on top: the
// flags are parsed again over the input's options, so that flags win.
func effectiveOptions(name string, bundle *render.Bundle, args []string) (render.Options, error) {
	inv := newInvocation()
	if bundle != nil {
		inv.opts = bundle.OptionsOrDefault()
	}
	cmd, _ := lookupCommand(name)
	err := cmd.flags(inv).Parse(args)
	return inv.opts, err
}

// renderFiles reads the input files of the command, takes the options they and the flags
// give, and renders them: the one way render and validate read files.
func renderFiles(command string, inv *invocation, args []string, stdin io.Reader, stderr io.Writer) ([]render.Result, int) {
	bundle, code := readBundle(inv.files, stdin, stderr)
	if bundle == nil {
		return nil, code
	}
	opts, err := effectiveOptions(command, bundle, args)
	if err != nil {
		return nil, usageError(stderr, "%s: %v", command, err)
	}
	results, err := render.Render(bundle, opts)
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: %s: %v\n", inv.files.String(), err)
		return nil, exitUsage
	}
	return results, exitOK
}

// runRender is `apirulectl render`.
func runRender(inv *invocation, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if inv.output != "yaml" && inv.output != "json" {
		return usageError(stderr, "render: -o %q: use yaml (a multi-document stream) or json (one v1 List)", inv.output)
	}
	results, code := renderFiles("render", inv, args, stdin, stderr)
	if code != exitOK {
		return code
	}
	var err error
	for _, line := range render.FindingLines(results) {
		fmt.Fprintln(stderr, line)
	}
	var out []byte
	if inv.output == "json" {
		out, err = render.JSON(results)
	} else {
		out, err = render.YAML(results)
	}
	if err != nil {
		fmt.Fprintln(stderr, "apirulectl:", err)
		return exitUsage
	}
	if _, err := stdout.Write(out); err != nil {
		return exitUsage
	}
	if render.HasErrors(results) {
		fmt.Fprintln(stderr, "apirulectl: APIRules with errors generate nothing; the output holds only the others")
		return exitFindings
	}
	return exitOK
}

// runValidate is `apirulectl validate`, on files or, with the cluster flags, on a cluster.
func runValidate(inv *invocation, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var results []render.Result
	if inv.live() {
		if len(inv.files) > 0 {
			return usageError(stderr, "validate: -f and the cluster flags (--kubeconfig, --context, -n, -A) exclude each other: "+
				"validate either files or a cluster's APIRules")
		}
		if inv.allNamespaces && inv.namespace != "" {
			return usageError(stderr, "validate: -n and -A exclude each other")
		}
		opts, err := effectiveOptions("validate", nil, args)
		if err != nil {
			return usageError(stderr, "validate: %v", err)
		}
		var code int
		if results, code = validateCluster(inv, opts, stderr); code != exitOK {
			return code
		}
	} else {
		if len(inv.files) == 0 {
			return usageError(stderr, "validate: -f FILE is required (use - for standard input), or --kubeconfig, --context, -n or -A "+
				"to validate the APIRules of a cluster")
		}
		var code int
		if results, code = renderFiles("validate", inv, args, stdin, stderr); code != exitOK {
			return code
		}
	}
	failed := render.HasErrors(results)
	// validate also gives the warnings the admission webhook gives at kubectl apply time
	// (noAuth on every path, a JWKS over http, wildcard hosts), so a review sees them.
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
		return exitFindings
	case len(lines) == 0:
		fmt.Fprintf(stdout, "%d APIRules valid\n", len(results))
	default:
		fmt.Fprintf(stdout, "%d APIRules valid, with the warnings above\n", len(results))
	}
	return exitOK
}

// fileList collects repeated -f flags.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }
