package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/apirule-operator/apirule-operator/internal/render"
)

// invocation holds what the flags and arguments of one command line set.
type invocation struct {
	opts          render.Options
	files         fileList
	output        string
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
	strict        bool
	args          []string
}

func newInvocation() *invocation {
	return &invocation{opts: render.DefaultOptions(), output: "yaml"}
}

// live says whether validate reads a cluster rather than files.
func (inv *invocation) live() bool {
	return inv.kubeconfig != "" || inv.context != "" || inv.namespace != "" || inv.allNamespaces
}

// flagGroup is a set of flags that several commands share. The help text, the completion
// scripts and the documentation test all walk the groups, so a flag added here shows up in
// each of them (and the test fails until docs/apirulectl.md lists it).
type flagGroup struct {
	title string
	bind  func(fs *flag.FlagSet, inv *invocation)
}

var (
	inputFlags = flagGroup{"Input (render, validate, convert)", func(fs *flag.FlagSet, inv *invocation) {
		fs.Var(&inv.files, "f", "input `FILE`, or - for standard input; repeat to combine files (APIRules and their context)")
	}}
	outputFlags = flagGroup{"Output (render)", func(fs *flag.FlagSet, inv *invocation) {
		fs.StringVar(&inv.output, "o", inv.output, "output `FORMAT`: yaml (a multi-document stream) or json (one v1 List)")
	}}
	clusterFlags = flagGroup{"Cluster (validate: any of these reads the APIRules of a cluster instead of files)", func(fs *flag.FlagSet, inv *invocation) {
		fs.StringVar(&inv.kubeconfig, "kubeconfig", "", "`PATH` of the kubeconfig file; empty for $KUBECONFIG or ~/.kube/config")
		fs.StringVar(&inv.context, "context", "", "kubeconfig `CONTEXT` to use; empty for the current context")
		fs.StringVar(&inv.namespace, "namespace", "", "report the APIRules of `NAMESPACE`; empty for the context's namespace")
		fs.StringVar(&inv.namespace, "n", "", "short for --namespace")
		fs.BoolVar(&inv.allNamespaces, "all-namespaces", false, "report the APIRules of every namespace")
		fs.BoolVar(&inv.allNamespaces, "A", false, "short for --all-namespaces")
	}}
	convertFlags = flagGroup{"Conversion (convert)", func(fs *flag.FlagSet, inv *invocation) {
		fs.BoolVar(&inv.strict, "strict", false, "exit 1 when any field cannot be converted")
	}}
	settingsFlags = flagGroup{"Operator settings (render, validate; flags override a RenderOptions document)", func(fs *flag.FlagSet, inv *invocation) {
		inv.opts.BindFlags(fs)
	}}
	flagGroups = []flagGroup{inputFlags, outputFlags, clusterFlags, convertFlags, settingsFlags}
)

// shortFor maps a short flag to the long flag it abbreviates; help and completion show them
// together.
var shortFor = map[string]string{"n": "namespace", "A": "all-namespaces"}

// command is one subcommand of apirulectl.
type command struct {
	name     string
	synopsis []string // usage lines, after "apirulectl "
	summary  string
	// positional names the command's positional argument; empty when it takes none.
	positional string
	groups     []flagGroup
	run        func(inv *invocation, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// flags returns the command's flag set, bound to inv. It reports nothing itself: run prints
// usage errors to stderr and help to stdout.
func (c command) flags(inv *invocation) *flag.FlagSet {
	fs := flag.NewFlagSet("apirulectl "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, g := range c.groups {
		g.bind(fs, inv)
	}
	return fs
}

// commands are the subcommands, in the order help lists them. It is a function, not a
// variable: the commands' run functions read it (help, completion).
func commands() []command {
	return []command{
		{name: "render", synopsis: []string{"render   -f FILE [-f FILE...] [-o yaml|json] [settings]"},
			summary: "print the Istio objects the operator would apply; findings go to stderr",
			groups:  []flagGroup{inputFlags, outputFlags, settingsFlags}, run: runRender},
		{name: "validate", synopsis: []string{
			"validate -f FILE [-f FILE...] [settings]",
			"validate [--kubeconfig PATH] [--context NAME] [-n NAMESPACE | -A] [settings]   (at least one of the four)",
		}, summary: "print every finding with its field path, for files or a cluster's APIRules; exit 1 on an error",
			groups: []flagGroup{inputFlags, clusterFlags, settingsFlags}, run: runValidate},
		{name: "convert", synopsis: []string{"convert  -f FILE [-f FILE...] [--strict]"},
			summary: "print Kyma APIRules (gateway.kyma-project.io v2, v1beta1) as gateway.apirule.io/v2; what does not convert goes to stderr",
			groups:  []flagGroup{inputFlags, convertFlags}, run: runConvert},
		{name: "version", synopsis: []string{"version"}, summary: "print the version, commit and Go version", run: runVersion},
		{name: "completion", synopsis: []string{"completion bash|zsh|fish"}, positional: "bash|zsh|fish",
			summary: "print the shell completion script", run: runCompletion},
	}
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// flagNames returns the command's flags as typed on a command line: -x for one letter,
// --name otherwise.
func (c command) flagNames() []string {
	var out []string
	fs := c.flags(newInvocation())
	for _, g := range c.groups {
		for _, name := range groupFlags(g) {
			if fs.Lookup(name) != nil {
				out = append(out, dashed(name))
			}
		}
	}
	return out
}

// groupFlags returns the names of a group's flags, alphabetically (as VisitAll gives them),
// each short alias after its long flag.
func groupFlags(g flagGroup) []string {
	var names []string
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	g.bind(fs, newInvocation())
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return orderForHelp(names)
}

// orderForHelp puts each short alias right after its long flag.
func orderForHelp(names []string) []string {
	var out []string
	for _, n := range names {
		if _, isShort := shortFor[n]; isShort {
			continue
		}
		out = append(out, n)
		for short, long := range shortFor {
			if long == n {
				out = append(out, short)
			}
		}
	}
	return out
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// helpText is the complete usage: every command and every flag. It is the same at every
// level (apirulectl --help, apirulectl render --help), so no flag is found only by asking
// the right subcommand.
func helpText() string {
	var b strings.Builder
	b.WriteString(`apirulectl takes APIRules through the admission webhook's checks and the operator's checks and
translator, with neither running: on files, for review before APIRules reach a cluster, or on
the APIRules of a cluster. It also converts Kyma APIRules.

Usage:
`)
	for _, c := range commands() {
		for _, s := range c.synopsis {
			fmt.Fprintf(&b, "  apirulectl %s\n", s)
		}
	}
	b.WriteString("  apirulectl help | -h | --help\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	b.WriteString(`
The files (- for standard input) hold APIRules and the objects they reference: Services,
Pods, Istio Gateways and VirtualServices, the Secrets of mTLS APIRules, the mesh config
ConfigMap (istio in istio-system) for extAuth rules, ReferenceGrants, and optionally one
RenderOptions document (apiVersion apirulectl.apirule.io/v1) with the operator settings.
`)
	for _, g := range flagGroups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		g.bind(fs, newInvocation())
		for _, name := range groupFlags(g) {
			if _, isShort := shortFor[name]; isShort {
				continue
			}
			writeFlag(&b, fs.Lookup(name))
		}
	}
	b.WriteString(`
Exit codes: 0 fine (warnings allowed); 1 an APIRule has an error (render prints the others),
or convert left fields out under --strict or converted nothing; 2 bad usage or unreadable input.
`)
	return b.String()
}

// writeFlag writes one flag's help: its names, its value's name, its meaning and default.
func writeFlag(b *strings.Builder, f *flag.Flag) {
	names := dashed(f.Name)
	for short, long := range shortFor {
		if long == f.Name {
			names = dashed(short) + ", " + names
		}
	}
	value, usage := flag.UnquoteUsage(f)
	if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
		value = ""
	}
	if value != "" {
		names += " " + value
	}
	fmt.Fprintf(b, "  %s\n      %s", names, usage)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		fmt.Fprintf(b, " (default %s)", f.DefValue)
	}
	b.WriteString("\n")
}
