package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/kubescheme"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

// clusterTimeout bounds the reads of live mode: a cluster that does not answer must not hang
// a CI job.
const clusterTimeout = 2 * time.Minute

// validateCluster reads the cluster of the kubeconfig and returns the findings of the
// APIRules in the chosen namespaces, as the operator would report them. The code is exitOK
// when results are returned.
func validateCluster(inv *invocation, opts render.Options, stderr io.Writer) ([]render.Result, int) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if inv.kubeconfig != "" {
		rules.ExplicitPath = inv.kubeconfig
	}
	kubeconfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: inv.context})
	cfg, err := kubeconfig.ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: validate: reading the kubeconfig: %v\n", err)
		return nil, exitUsage
	}
	namespace := inv.namespace
	if namespace == "" && !inv.allNamespaces {
		if namespace, _, err = kubeconfig.Namespace(); err != nil {
			fmt.Fprintf(stderr, "apirulectl: validate: reading the kubeconfig's namespace: %v\n", err)
			return nil, exitUsage
		}
	}
	scheme, err := kubescheme.New()
	if err != nil {
		fmt.Fprintln(stderr, "apirulectl:", err)
		return nil, exitUsage
	}
	// Nothing here writes: the client is used as a reader only.
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: validate: connecting to %s: %v\n", cfg.Host, err)
		return nil, exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	bundle, err := render.LoadCluster(ctx, c, c.RESTMapper(), opts)
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: validate: %s: %v\n", cfg.Host, err)
		return nil, exitUsage
	}
	results, err := render.Render(bundle, opts)
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: validate: %s: %v\n", cfg.Host, err)
		return nil, exitUsage
	}
	// Every APIRule took part (host claims and shared workloads cross namespaces); only the
	// chosen namespace's are reported.
	var out []render.Result
	for _, r := range results {
		if inv.allNamespaces || r.APIRule.Namespace == namespace {
			out = append(out, r)
		}
	}
	return out, exitOK
}
