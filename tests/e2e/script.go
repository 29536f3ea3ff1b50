// Package e2e runs the guides of docs/guides against a real cluster: every shell step of a
// guide, in order, with each curl whose comment names a status code checked for that code.
// script.go turns a guide into that script; it is tested in every `go test`, the run itself
// only with the e2e build tag (make e2e), where a cluster exists.
package e2e

import (
	"fmt"
	"regexp"
	"strings"
)

// Script is a guide as a bash script.
type Script struct {
	// Bash is the script: a prelude that defines expect_code, then the guide's sh blocks.
	Bash string
	// Checks counts the commands whose status code is checked.
	Checks int
}

var (
	fence = regexp.MustCompile("(?m)^\\s*```")
	// A trailing comment that starts with a status code: "# 404: no rule routes DELETE".
	expectation = regexp.MustCompile(`^(.*?)\s+#\s*([1-5][0-9][0-9])\b[^'"]*$`)
	heredocOpen = regexp.MustCompile(`<<-?'?(\w+)'?\s*$`)
	// A shell function of the guide that prints the status code: gw() { curl ... -w '%{http_code}...'; }
	codeFunction = regexp.MustCompile(`^(\w+)\(\)\s*\{.*-w\s+'%\{http_code\}`)
)

// prelude checks one command's printed status code.
const prelude = `set -euo pipefail
expect_code() {
  local want=$1 got
  shift
  got=$("$@" | tail -n 1)
  if [ "$got" != "$want" ]; then
    echo "FAIL: want $want, got $got: $*" >&2
    exit 1
  fi
  echo "ok $want: $*"
}
`

// Skipped says which blocks of the guides the runner does itself: finding the gateway's
// address (it knows it), and forwarding a port in a second terminal.
func skipped(block string) bool {
	return strings.Contains(block, "port-forward") || strings.Contains(block, "export GATEWAY=")
}

// GuideScript turns a guide's markdown into a script. Every fenced sh block runs, in order,
// except those Skipped; a command (continued lines joined) whose comment starts with a status
// code is checked for it: as written when it prints the code itself (-w '%{http_code}' or a
// function of the guide that does), else, for a plain curl, with the code printed instead of
// the body. Heredoc bodies pass through untouched.
func GuideScript(markdown string) (Script, error) {
	var out strings.Builder
	out.WriteString(prelude)
	checks := 0
	functions := map[string]bool{}
	parts := fence.Split(markdown, -1)
	for i := 1; i < len(parts); i += 2 {
		block := parts[i]
		lang, body, _ := strings.Cut(block, "\n")
		if strings.TrimSpace(lang) != "sh" || skipped(body) {
			continue
		}
		lines, err := rewriteBlock(dedent(body), functions, &checks)
		if err != nil {
			return Script{}, fmt.Errorf("block %d: %w", i/2+1, err)
		}
		out.WriteString(lines)
	}
	return Script{Bash: out.String(), Checks: checks}, nil
}

func rewriteBlock(body string, functions map[string]bool, checks *int) (string, error) {
	var out strings.Builder
	physical := strings.Split(body, "\n")
	for n := 0; n < len(physical); n++ {
		line := physical[n]
		if m := heredocOpen.FindStringSubmatch(line); m != nil {
			out.WriteString(line + "\n")
			for n++; n < len(physical) && strings.TrimSpace(physical[n]) != m[1]; n++ {
				out.WriteString(physical[n] + "\n")
			}
			if n == len(physical) {
				return "", fmt.Errorf("heredoc %s is not closed", m[1])
			}
			out.WriteString(m[1] + "\n")
			continue
		}
		command := line
		for strings.HasSuffix(strings.TrimRight(command, " "), "\\") && n+1 < len(physical) {
			n++
			command = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(command, " "), "\\"), " ") + " " + strings.TrimSpace(physical[n])
		}
		if m := codeFunction.FindStringSubmatch(strings.TrimSpace(command)); m != nil {
			functions[m[1]] = true
		}
		out.WriteString(checked(command, functions, checks) + "\n")
	}
	return out.String(), nil
}

// checked rewrites one command with a status-code comment into an expect_code call.
func checked(command string, functions map[string]bool, checks *int) string {
	m := expectation.FindStringSubmatch(command)
	if m == nil || strings.Contains(m[1], "|") {
		return command
	}
	cmd, code := strings.TrimSpace(m[1]), m[2]
	first, _, _ := strings.Cut(cmd, " ")
	switch {
	case strings.Contains(cmd, "-w '%{http_code}") || functions[first]:
	case first == "curl":
		cmd = "curl -s -o /dev/null -w '%{http_code}\\n'" + strings.TrimPrefix(cmd, "curl")
	default:
		return command
	}
	*checks++
	return "expect_code " + code + " " + cmd
}

// dedent removes the indentation of a block nested in a list item.
func dedent(body string) string {
	lines := strings.Split(body, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
