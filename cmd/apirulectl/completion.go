package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// The completion scripts are written here per shell rather than produced by a CLI framework:
// the module has none, and three short scripts do not justify one. They are generated from
// commands() and the flag groups, so every command and flag the binary parses is completed.

var shells = []string{"bash", "zsh", "fish"}

// runCompletion is `apirulectl completion SHELL`.
func runCompletion(inv *invocation, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(inv.args) != 1 {
		return usageError(stderr, "completion: name one shell: %s", strings.Join(shells, ", "))
	}
	var script string
	switch inv.args[0] {
	case "bash":
		script = bashCompletion()
	case "zsh":
		script = zshCompletion()
	case "fish":
		script = fishCompletion()
	default:
		return usageError(stderr, "completion: unknown shell %q; use one of %s", inv.args[0], strings.Join(shells, ", "))
	}
	fmt.Fprint(stdout, script)
	return exitOK
}

// completedFlag is what a script needs to know of a flag.
type completedFlag struct {
	name        string // as typed: -f, --kubeconfig
	bare        string // without dashes
	description string
	// values: "" for a boolean flag, "file" for a path, "any" for free text, or the
	// space-separated list of the values it accepts.
	values string
}

func completedFlags(c command) []completedFlag {
	fs := c.flags(newInvocation())
	var out []completedFlag
	for _, name := range c.flagNames() {
		bare := strings.TrimLeft(name, "-")
		f := fs.Lookup(bare)
		value, usage := flag.UnquoteUsage(f)
		cf := completedFlag{name: name, bare: bare, description: shortDescription(usage)}
		switch _, isBool := f.Value.(interface{ IsBoolFlag() bool }); {
		case isBool:
		case value == "FILE" || value == "PATH":
			cf.values = "file"
		case value == "FORMAT":
			cf.values = "yaml json"
		default:
			cf.values = "any"
		}
		out = append(out, cf)
	}
	return out
}

// shortDescription is the first clause of a flag's usage (up to ; ( or :), without the characters the
// shells' description syntaxes give a meaning.
func shortDescription(usage string) string {
	if i := strings.IndexAny(usage, ";(:"); i > 0 {
		usage = usage[:i]
	}
	usage = strings.Map(func(r rune) rune {
		switch r {
		case '\'', '"', '`', '[', ']', ':', '\\', '$':
			return -1
		}
		return r
	}, usage)
	return strings.TrimSpace(usage)
}

func commandNames() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.name)
	}
	return append(out, "help")
}

func bashCompletion() string {
	var b strings.Builder
	b.WriteString(`# bash completion for apirulectl. Load it with
#   source <(apirulectl completion bash)
# or save it as /etc/bash_completion.d/apirulectl.
_apirulectl() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ ${COMP_CWORD} -eq 1 ]]; then
        COMPREPLY=($(compgen -W "`)
	b.WriteString(strings.Join(commandNames(), " "))
	b.WriteString(`" -- "${cur}"))
        return
    fi
    local flags=""
    case "${COMP_WORDS[1]}" in
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "    %s)\n", c.name)
		if c.positional != "" {
			fmt.Fprintf(&b, "        COMPREPLY=($(compgen -W %q -- \"${cur}\"))\n        return\n        ;;\n",
				strings.ReplaceAll(c.positional, "|", " "))
			continue
		}
		flags := completedFlags(c)
		var names []string
		for _, f := range flags {
			names = append(names, f.name)
		}
		b.WriteString("        case \"${prev}\" in\n")
		for _, f := range flags {
			switch f.values {
			case "":
			case "file":
				fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -f -- \"${cur}\")); return ;;\n", f.name)
			case "any":
				fmt.Fprintf(&b, "        %s) COMPREPLY=(); return ;;\n", f.name)
			default:
				fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"${cur}\")); return ;;\n", f.name, f.values)
			}
		}
		b.WriteString("        esac\n")
		fmt.Fprintf(&b, "        flags=%q\n        ;;\n", strings.Join(names, " "))
	}
	b.WriteString(`    esac
    COMPREPLY=($(compgen -W "${flags}" -- "${cur}"))
}
complete -o default -F _apirulectl apirulectl
`)
	return b.String()
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString(`#compdef apirulectl
# zsh completion for apirulectl. Load it with
#   source <(apirulectl completion zsh)
# or save it as _apirulectl in a directory of $fpath.
_apirulectl() {
    local -a commands
    commands=(
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "        '%s:%s'\n", c.name, shortDescription(c.summary))
	}
	b.WriteString(`        'help:print every command and flag'
    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'apirulectl command' commands
        return
    fi
    local command=${words[2]}
    words=(${words[2,-1]})
    (( CURRENT-- ))
    case ${command} in
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "    %s)\n", c.name)
		if c.positional != "" {
			fmt.Fprintf(&b, "        _values 'shell' %s\n        ;;\n", strings.ReplaceAll(c.positional, "|", " "))
			continue
		}
		b.WriteString("        _arguments \\\n")
		for _, f := range completedFlags(c) {
			repeat := ""
			if f.bare == "f" {
				repeat = "*"
			}
			spec := fmt.Sprintf("%s%s[%s]", repeat, f.name, f.description)
			switch f.values {
			case "":
			case "file":
				spec += ":file:_files"
			case "any":
				spec += ":value: "
			default:
				spec += fmt.Sprintf(":value:(%s)", f.values)
			}
			fmt.Fprintf(&b, "            '%s' \\\n", spec)
		}
		b.WriteString("            && return\n        ;;\n")
	}
	b.WriteString(`    esac
}
if [[ "${funcstack[1]}" == "_apirulectl" ]]; then
    _apirulectl "$@"
else
    compdef _apirulectl apirulectl
fi
`)
	return b.String()
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString(`# fish completion for apirulectl. Load it with
#   apirulectl completion fish | source
# or save it as ~/.config/fish/completions/apirulectl.fish.
complete -c apirulectl -f
`)
	all := strings.Join(commandNames(), " ")
	for _, c := range commands() {
		fmt.Fprintf(&b, "complete -c apirulectl -n 'not __fish_seen_subcommand_from %s' -a %s -d '%s'\n", all, c.name, shortDescription(c.summary))
	}
	fmt.Fprintf(&b, "complete -c apirulectl -n 'not __fish_seen_subcommand_from %s' -a help -d 'print every command and flag'\n", all)
	for _, c := range commands() {
		when := fmt.Sprintf("-n '__fish_seen_subcommand_from %s'", c.name)
		if c.positional != "" {
			fmt.Fprintf(&b, "complete -c apirulectl %s -a '%s'\n", when, strings.ReplaceAll(c.positional, "|", " "))
			continue
		}
		for _, f := range completedFlags(c) {
			option := "-l " + f.bare
			if len(f.bare) == 1 {
				option = "-s " + f.bare
			}
			var values string
			switch f.values {
			case "":
			case "file":
				values = " -r -F"
			case "any":
				values = " -x"
			default:
				values = fmt.Sprintf(" -x -a '%s'", f.values)
			}
			fmt.Fprintf(&b, "complete -c apirulectl %s %s%s -d '%s'\n", when, option, values, f.description)
		}
	}
	return b.String()
}
