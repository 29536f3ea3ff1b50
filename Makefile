# apirule-operator

# Pinned tool and control-plane versions. Changing one rebuilds only that tool.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
ENVTEST_K8S_VERSION ?= v1.37.2
ENVTEST_ETCD_VERSION ?= v3.5.21

IMG ?= apirule-operator:dev

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
ENVTEST_ASSETS := $(LOCALBIN)/envtest
ISTIO_CRDS := $(LOCALBIN)/crds/istio.yaml

# The Istio-in-the-loop harness is a module of its own: istio.io/istio pins its own Kubernetes
# versions. Its two unpublished modules are not in the checksum database; go.sum holds their
# hashes, so GONOSUMDB matters only when go.sum gains lines (a version change).
ISTIO_HARNESS := tests/istio
ISTIO_HARNESS_GONOSUMDB := istio.io/istio,github.com/envoyproxy/go-control-plane

# Tests find the control plane and the Istio CRDs through these variables.
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)
export APIRULE_ISTIO_CRDS := $(ISTIO_CRDS)

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

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

.PHONY: verify
verify: manifests generate ## Fail when generated files are stale or go.mod is untidy.
	go mod tidy
	cd $(ISTIO_HARNESS) && GONOSUMDB=$(ISTIO_HARNESS_GONOSUMDB) go mod tidy
	@if [ -n "$$(git status --porcelain -- api config go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and 'go mod tidy' (also in $(ISTIO_HARNESS)), then commit:"; \
		git status --porcelain -- api config go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum; git --no-pager diff --stat -- api config go.mod go.sum $(ISTIO_HARNESS)/go.mod $(ISTIO_HARNESS)/go.sum; exit 1; \
	fi
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "files need gofmt:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	cd $(ISTIO_HARNESS) && go vet ./...

.PHONY: test
test: envtest-assets ## Run the unit and envtest suites against a real kube-apiserver and etcd, then the Istio harness.
	go test ./... -count=1 -timeout 30m
	@$(MAKE) --no-print-directory test-istio

.PHONY: test-istio
test-istio: ## Check every golden case and sample render with Istio's validation and xDS (tests/istio, docs/verification.md).
	go build -o $(LOCALBIN)/apirulectl ./cmd/apirulectl
	cd $(ISTIO_HARNESS) && APIRULECTL=$(LOCALBIN)/apirulectl go test ./... -count=1 -timeout 30m

.PHONY: envtest-assets
envtest-assets: istio-crds ## Build kube-apiserver and etcd into bin/envtest (cached) and copy the Istio CRDs.
	hack/build-envtest-assets.sh $(ENVTEST_ASSETS) $(ENVTEST_K8S_VERSION) $(ENVTEST_ETCD_VERSION)

.PHONY: istio-crds
istio-crds: ## Copy the Istio CRDs of the istio.io/api version in go.mod into bin/crds.
	@mkdir -p $(dir $(ISTIO_CRDS))
	@# One shell line: the module directory is known only after the download.
	@go mod download istio.io/api && \
		src="$$(go list -m -f '{{.Dir}}' istio.io/api)/kubernetes/customresourcedefinitions.gen.yaml" && \
		{ cmp -s "$$src" $(ISTIO_CRDS) || install -m 0644 "$$src" $(ISTIO_CRDS); }

##@ Run

.PHONY: demo
demo: envtest-assets ## Start a local control plane, run the operator on the samples and print the result.
	go run ./hack/demo

.PHONY: bench
bench: envtest-assets ## Scale benchmark (BENCH_N=1000 by default; BENCH_WRITE_DOCS=1 writes docs/performance.md; BENCH_ARGS for flags).
	BENCH_ARGS="$(BENCH_ARGS)" go run ./tests/bench/cmd $(BENCH_ARGS)

.PHONY: build
build: ## Build the manager and apirulectl binaries into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/apirulectl ./cmd/apirulectl

.PHONY: run
run: manifests ## Run the manager against the cluster in the current kubeconfig.
	go run ./cmd/manager

.PHONY: install
install: manifests ## Install the CRDs into the cluster in the current kubeconfig.
	kubectl apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs from the cluster in the current kubeconfig.
	kubectl delete --ignore-not-found -f config/crd/bases

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: clean
clean: ## Remove built binaries (the control-plane build is kept; remove bin/envtest to rebuild it).
	rm -f $(LOCALBIN)/manager
