# apirule-operator

# Pinned tool and control-plane versions. Changing one rebuilds only that tool.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
ENVTEST_K8S_VERSION ?= v1.37.2
ENVTEST_ETCD_VERSION ?= v3.5.21
KUSTOMIZE_VERSION ?= v5.8.2
HELM_VERSION ?= v4.3.1
CRD_REF_DOCS_VERSION ?= v0.3.0
GOLANGCI_LINT_VERSION ?= v2.15.0
ACTIONLINT_VERSION ?= v1.7.12

IMG ?= apirule-operator:dev
CONTAINER_TOOL ?= docker

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE := $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM := $(LOCALBIN)/helm-$(HELM_VERSION)
CRD_REF_DOCS := $(LOCALBIN)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
ACTIONLINT := $(LOCALBIN)/actionlint-$(ACTIONLINT_VERSION)
CHART := charts/apirule-operator
ENVTEST_ASSETS := $(LOCALBIN)/envtest
ISTIO_CRDS := $(LOCALBIN)/crds/istio.yaml
REFERENCE_GRANT_CRD := $(LOCALBIN)/crds/referencegrants.yaml

# The Istio-in-the-loop harness is a module of its own: istio.io/istio pins its own Kubernetes
# versions. Its two unpublished modules are not in the checksum database; go.sum holds their
# hashes, so GONOSUMDB matters only when go.sum gains lines (a version change).
ISTIO_HARNESS := tests/istio
ISTIO_HARNESS_GONOSUMDB := istio.io/istio,github.com/envoyproxy/go-control-plane

# Tests find the control plane and the Istio CRDs through these variables.
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)
export APIRULE_ISTIO_CRDS := $(ISTIO_CRDS)
export APIRULE_REFERENCE_GRANT_CRD := $(REFERENCE_GRANT_CRD)
# The install tests render the manifests with these.
export APIRULE_KUSTOMIZE := $(KUSTOMIZE)
export APIRULE_HELM := $(HELM)

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD, RBAC and webhook manifests from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./api/..." paths="./controllers/..." paths="./internal/webhook/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	@# The Helm chart installs the same CRDs and rules: copies, checked by 'make verify'.
	@rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml
	cp config/finalizer-policy/finalizer-policy.yaml $(CHART)/files/finalizer-policy.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...
	cd $(ISTIO_HARNESS) && go vet ./...

# tests/istio is not linted: its first run analyses istio.io/istio and takes over 10 minutes.
.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yml: staticcheck, depguard import rules, ...) on the root module.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate docs ## Fail when generated files are stale or go.mod is untidy; gofmt, go vet, make lint.
	go mod tidy
	cd $(ISTIO_HARNESS) && GONOSUMDB=$(ISTIO_HARNESS_GONOSUMDB) go mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts docs/reference go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum)" ]; then \
		echo "generated files are stale; run 'make manifests generate docs' and 'go mod tidy' (also in $(ISTIO_HARNESS)), then commit:"; \
		git status --porcelain -- api config charts docs/reference go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum; git --no-pager diff --stat -- api config charts docs/reference go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum; exit 1; \
	fi
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "files need gofmt:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	cd $(ISTIO_HARNESS) && go vet ./...
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory lint-scripts

# The shell scripts and the CI workflow: shellcheck (Debian's package; .ci/run installs it) and
# actionlint, built at its pinned version, which also runs shellcheck on the workflow's steps.
SHELL_SCRIPTS := .ci/run $(shell git ls-files 'hack/*.sh' 'hack/**/*.sh')
.PHONY: lint-scripts
lint-scripts: $(ACTIONLINT) ## Lint the shell scripts (shellcheck) and the GitHub workflows (actionlint).
	@command -v shellcheck >/dev/null || { echo "lint-scripts needs shellcheck: apt-get install shellcheck"; exit 1; }
	shellcheck $(SHELL_SCRIPTS)
	$(ACTIONLINT) -shellcheck=$$(command -v shellcheck) .github/workflows/*.yaml

.PHONY: test
test: envtest-assets $(KUSTOMIZE) $(HELM) ## Run the unit and envtest suites against a real kube-apiserver and etcd, then the Istio harness.
	go test ./... -count=1 -timeout 30m
	@$(MAKE) --no-print-directory test-istio

.PHONY: test-istio
test-istio: ## Check every golden case and sample render with Istio's validation and xDS (tests/istio, docs/verification.md).
	go build -o $(LOCALBIN)/apirulectl ./cmd/apirulectl
	cd $(ISTIO_HARNESS) && APIRULECTL=$(LOCALBIN)/apirulectl go test ./... -count=1 -timeout 30m

.PHONY: envtest-assets
envtest-assets: istio-crds ## Build kube-apiserver and etcd into bin/envtest (cached) and copy the Istio and ReferenceGrant CRDs.
	hack/build-envtest-assets.sh $(ENVTEST_ASSETS) $(ENVTEST_K8S_VERSION) $(ENVTEST_ETCD_VERSION)

.PHONY: istio-crds
istio-crds: ## Copy the Istio CRDs (istio.io/api) and Gateway API's ReferenceGrant CRD of the versions in go.mod into bin/crds.
	@mkdir -p $(dir $(ISTIO_CRDS))
	@# One shell line: the module directory is known only after the download.
	@go mod download istio.io/api && \
		src="$$(go list -m -f '{{.Dir}}' istio.io/api)/kubernetes/customresourcedefinitions.gen.yaml" && \
		{ cmp -s "$$src" $(ISTIO_CRDS) || install -m 0644 "$$src" $(ISTIO_CRDS); }
	@# Gateway API's ReferenceGrant, the consent to cross-namespace backends, of the version in go.mod.
	@go mod download sigs.k8s.io/gateway-api && \
		src="$$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml" && \
		{ cmp -s "$$src" $(REFERENCE_GRANT_CRD) || install -m 0644 "$$src" $(REFERENCE_GRANT_CRD); }

.PHONY: docs
docs: $(CRD_REF_DOCS) ## Generate the API reference docs/reference/api.md from the Go types.
	@mkdir -p docs/reference
	$(CRD_REF_DOCS) --source-path=api/v2 --config=hack/crd-ref-docs/config.yaml \
		--renderer=markdown --log-level=ERROR \
		--output-path=docs/reference/api.md

##@ Run

.PHONY: demo
demo: envtest-assets ## Start a local control plane, run the operator on the samples and print the result.
	go run ./hack/demo

.PHONY: bench
bench: envtest-assets build ## Scale benchmark (BENCH_N=1000 by default; BENCH_WRITE_DOCS=1 writes docs/performance.md; BENCH_ARGS for flags).
	BENCH_ARGS="$(BENCH_ARGS)" go run ./tests/bench/cmd $(BENCH_ARGS)

# The version the binaries report (--version, the apirule_build_info metric): the manifests'
# image tag, and the commit of the checkout.
VERSION ?= $(shell sed -n 's/^ *newTag: //p' config/manager/kustomization.yaml)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG := github.com/apirule-operator/apirule-operator/internal/version
LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT)

.PHONY: build
build: ## Build the manager and apirulectl binaries into bin/.
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager ./cmd/manager
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/apirulectl ./cmd/apirulectl

# Outside a cluster the API server cannot call a local webhook, and there is no Pod namespace
# for the lease: run without both. RUN_ARGS adds flags (docs/configuration.md).
RUN_ARGS ?=
.PHONY: run
run: manifests ## Run the manager against the cluster in the current kubeconfig (CRDs first: make install).
	go run -ldflags "$(LDFLAGS)" ./cmd/manager --enable-webhook=false --leader-elect=false $(RUN_ARGS)

.PHONY: install
install: manifests ## Install the CRDs into the cluster in the current kubeconfig.
	kubectl apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs from the cluster in the current kubeconfig.
	kubectl delete --ignore-not-found -f config/crd/bases

##@ Deployment

.PHONY: docker-build
docker-build: ## Build the manager image IMG with CONTAINER_TOOL (docker by default).
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)

# The rendered manifests name the image ghcr.io/apirule-operator/apirule-operator:<version>
# (config/manager/kustomization.yaml); deploy swaps in IMG without editing the tree.
DEFAULT_IMAGE := $(shell sed -n 's/^ *newName: //p' config/manager/kustomization.yaml):$(shell sed -n 's/^ *newTag: //p' config/manager/kustomization.yaml)

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Install the operator (config/default) with the image IMG into the cluster in the current kubeconfig.
	$(KUSTOMIZE) build config/default | sed 's|image: $(DEFAULT_IMAGE)$$|image: $(IMG)|' \
		| kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove every APIRule (and what it generated), then everything 'make deploy' installed.
	@# APIRules first, while the operator still runs to take their routes down and release
	@# their finalizers; deleting the CRD and the Deployment together would leave them stuck.
	if kubectl get crd apirules.gateway.apirule.io >/dev/null 2>&1; then \
		kubectl delete apirules.gateway.apirule.io --all --all-namespaces --wait --timeout=5m; fi
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

.PHONY: tools
tools: $(CONTROLLER_GEN) $(KUSTOMIZE) $(HELM) $(CRD_REF_DOCS) $(GOLANGCI_LINT) $(ACTIONLINT) ## Build the pinned tools into bin/.

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

# Each tool is built from the Go module proxy at its pinned version into a version-stamped
# file: changing a version rebuilds only that tool, and a stale binary is never reused.
$(KUSTOMIZE):
	@mkdir -p $(LOCALBIN)/.kustomize
	GOBIN=$(LOCALBIN)/.kustomize go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/.kustomize/kustomize $(KUSTOMIZE)

$(HELM):
	@mkdir -p $(LOCALBIN)/.helm
	GOBIN=$(LOCALBIN)/.helm go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/.helm/helm $(HELM)

$(CRD_REF_DOCS):
	@mkdir -p $(LOCALBIN)/.crd-ref-docs
	GOBIN=$(LOCALBIN)/.crd-ref-docs go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)
	mv $(LOCALBIN)/.crd-ref-docs/crd-ref-docs $(CRD_REF_DOCS)

$(ACTIONLINT):
	@mkdir -p $(LOCALBIN)/.actionlint
	GOBIN=$(LOCALBIN)/.actionlint go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv $(LOCALBIN)/.actionlint/actionlint $(ACTIONLINT)

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)/.golangci-lint
	GOBIN=$(LOCALBIN)/.golangci-lint go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/.golangci-lint/golangci-lint $(GOLANGCI_LINT)

.PHONY: e2e
e2e: ## End to end on a new kind cluster with Istio and the operator installed by Helm: every guide, its status codes checked (needs docker, kind, kubectl, helm, network; not part of make test).
	hack/e2e/run.sh

.PHONY: clean
clean: ## Remove build outputs (binaries, the demo's files, copied CRDs); the pinned tools and the control-plane build are kept.
	rm -rf $(LOCALBIN)/manager $(LOCALBIN)/apirulectl $(LOCALBIN)/demo $(LOCALBIN)/crds
