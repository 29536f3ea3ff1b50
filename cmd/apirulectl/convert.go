package main

import "io"

func runConvert(inv *invocation, _ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return exitUsage
}
