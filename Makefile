# llm-d: a Kubernetes operator and a KEDA external scaler for vLLM.
# The two commands a newcomer needs are `make test` and `make demo`; the rest is for contributors.

SHELL := /usr/bin/env bash -o pipefail
GO    ?= go
CONTROLLER_GEN := $(GO) tool controller-gen

.PHONY: all build test demo fuzz soak bench-scaling manifests generate verify-generated tools images lint-workflows node-packages clean

all: build

build: ## Build the operator (and later the scaler) into bin/.
	$(GO) build -o bin/ ./cmd/...

manifests: ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=llm-d-operator paths=./controllers/... output:rbac:artifacts:config=config/rbac/operator
	$(CONTROLLER_GEN) rbac:roleName=llm-d-scaler paths=./scaler/... output:rbac:artifacts:config=config/rbac/scaler
	cp config/crd/bases/*.yaml charts/llm-d/crds/
	cp config/rbac/operator/role.yaml charts/llm-d/files/rbac/operator-role.yaml
	cp config/rbac/scaler/role.yaml charts/llm-d/files/rbac/scaler-role.yaml

generate: ## Generate deepcopy functions and the gRPC code of KEDA's external scaler contract.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(GO) tool buf generate proto --template proto/buf.gen.yaml -o proto

verify-generated: manifests generate ## Fail when generated files differ from what is committed.
	@git diff --exit-code --stat -- api config proto charts || { \
		echo "generated files are stale: run 'make manifests generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api config proto charts)" || { git status --porcelain -- api config proto charts; \
		echo "generated files are untracked: run 'make manifests generate' and commit the result" >&2; exit 1; }

tools: ## Build the real programs the tests run (kube-apiserver & co, kubelet, etcd, helm, KEDA, kwok, containerd, CoreDNS, the endpoint picker), cached per version.
	hack/tools.sh etcd >/dev/null
	hack/tools.sh kubernetes >/dev/null
	hack/tools.sh helm >/dev/null
	hack/tools.sh keda >/dev/null
	hack/tools.sh kwok >/dev/null
	hack/tools.sh epp >/dev/null
	hack/tools.sh actionlint >/dev/null
	hack/tools.sh containerd >/dev/null
	hack/tools.sh coredns >/dev/null

TOOL_DIRS = LLMD_ETCD_DIR=$$(hack/tools.sh etcd) LLMD_KUBERNETES_DIR=$$(hack/tools.sh kubernetes) \
	LLMD_HELM_DIR=$$(hack/tools.sh helm) LLMD_KEDA_DIR=$$(hack/tools.sh keda) LLMD_KWOK_DIR=$$(hack/tools.sh kwok) \
	LLMD_CONTAINERD_DIR=$$(hack/tools.sh containerd) LLMD_COREDNS_DIR=$$(hack/tools.sh coredns) LLMD_EPP_DIR=$$(hack/tools.sh epp)

# Debian's packages the real node needs besides what hack/tools.sh builds.
NODE_PACKAGES = runc containernetworking-plugins iptables

node-packages: ## Install Debian's runc, containernetworking-plugins and iptables when missing (root with apt only); the real-node tests need them.
	@if [ "$$(uname -s)" != Linux ]; then echo "node-packages: not Linux: the real-node tests skip"; exit 0; fi; \
	missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	missing=$$(echo $$missing); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "node-packages: $$missing missing and no root with apt-get: the real-node tests skip (fail under CI=true)"; exit 0; fi; \
	echo "node-packages: apt-get install $$missing"; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }

test: verify-generated tools node-packages ## Everything CI runs: generated-file check, vet, unit, envtest, chart, end-to-end and fuzz.
	$(GO) vet ./...
	$(MAKE) --no-print-directory lint-workflows
	$(TOOL_DIRS) $(GO) test -race -count=1 -timeout 30m ./...
	@# A short fuzz run of every fuzz target; `make fuzz` runs them long.
	$(MAKE) --no-print-directory fuzz FUZZTIME=short
	@# KEDA's own external-scaler client against our gRPC server: its own module (it compiles every KEDA
	@# scaler: 4 min the first time, on the build cache `tools` filled building KEDA), without -race so that
	@# the build is paid once.
	cd test/kedacontract && CGO_ENABLED=0 $(GO) test -count=1 -timeout 60m ./...

# Every fuzz target, as package:target:executions. `go test -fuzz` takes one target per run.
# FUZZTIME=short (what make test runs) gives each target its executions, about 3 s of fuzzing here. A count,
# not a duration: with a duration, Go 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no input written) on a loaded machine, golang/go#75804, fixed in Go 1.27.
# A long run (a duration) can still end that way; only a failure that writes an input to testdata/fuzz is a
# finding.
FUZZ_TARGETS = scaler/promtext:FuzzScan:20000 scaler/vllmmetrics:FuzzParse:60000 \
	scaler/vllmmetrics:FuzzParseMatchesExpfmt:30000 scaler/server:FuzzScalerMetadata:3000 \
	scaler/server:FuzzScaledObjectRefWire:3000 scaler/decision:FuzzDecide:50000 scaler/pool:FuzzAllocate:80000
FUZZTIME ?= 10m

fuzz: ## Fuzz every target for FUZZTIME each (default 10m; make test: FUZZTIME=short). Findings land in testdata/fuzz.
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; target=$${rest%%:*}; fuzztime=$(FUZZTIME); \
		if [ "$$fuzztime" = short ]; then fuzztime=$${rest#*:}x; fi; \
		echo "fuzz $$pkg $$target for $$fuzztime"; \
		$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$$fuzztime ./$$pkg; \
	done

# The simulated GPUs run at 10x: 6m of load is an hour of their time.
SOAK ?= 6m

soak: tools ## SOAK of steady load with pod churn on the local cluster; goroutines and live heap must return to baseline. Writes docs/soak-results.md.
	$(TOOL_DIRS) LLMD_SOAK=$(SOAK) LLMD_SOAK_REPORT=$(CURDIR)/docs/soak-results.md \
		$(GO) test -count=1 -timeout 0 -v -run '^TestSoak$$' ./test/e2e

images: ## Images of the operator, scaler and vllm-sim for amd64 and arm64, without Docker: bin/images/ (OCI layout oci/, <name>.tar for `ctr images import` or `docker load`). IMAGES_ARGS=--help for more.
	$(GO) run ./hack/images $(IMAGES_ARGS)

lint-workflows: ## actionlint on .github/workflows (built by hack/tools.sh), with shellcheck on their scripts when it is installed.
	@sc=shellcheck; if ! command -v shellcheck >/dev/null; then sc=; \
		echo "lint-workflows: shellcheck is not installed, so the workflows' shell scripts are not checked (apt-get install shellcheck)"; fi; \
	"$$(hack/tools.sh actionlint)/actionlint" -no-color -pyflakes= -shellcheck="$$sc"

# The Azure LLM inference traces the scaling benchmark replays besides its generated ones.
TRACES ?= ../shared/traces

bench-scaling: ## The scaling benchmark: every trace of the suite under every policy and fixed count; writes docs/simulation/suite/.
	$(GO) run ./cmd/llmd bench-scaling --service config/samples/llama-3-8b-autoscaling.yaml --traces $(TRACES) \
		--out docs/simulation/suite

clean:
	rm -rf bin

demo: ## The whole scaling path on a local cluster: real KEDA, HPA and kwok, simulated vLLM pods, a burst.
	$(TOOL_DIRS) $(GO) run ./hack/demo
