# errnowatch. `make help` lists the targets; a newcomer needs two of them:
#   make run    watch this host's failing syscalls live (as root, no cluster)
#   make test   everything, on the real kernel and a real kube-apiserver
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     := $(CURDIR)/bin
CLANG   ?= clang-19
# Extra flags for `go test`, e.g. make test GOTESTFLAGS='-run TestDrain -v'.
GOTESTFLAGS ?=
TOOLS   := $(GO) tool -modfile=$(CURDIR)/tools/go.mod

include mk/kube.mk
include mk/otelcol.mk

# Debian packages, by what needs them. `make deps` installs the missing ones
# (hack/deps.sh: nothing to do costs one dpkg-query).
#   generate: clang and the libbpf headers rebuild the BPF objects.
#   test:     postgresql (the PostgreSQL store's tests start private servers
#             from its binaries); containerd, runc, the CNI plugins, iptables,
#             conntrack, iproute2 and util-linux (the e2e node); busybox-static
#             (the e2e workload image); chromium (the web UI's browser tests,
#             pkg/ui, driven headless with chromedp) and firefox-esr (the same
#             pages over WebDriver BiDi); rsyslog (pkg/sink's
#             tests start a private rsyslogd as a real syslog receiver);
#             make, gcc, python3, nodejs, default-jre-headless, curl and
#             procps (test/attacks' benign corpus runs a C build, interpreter
#             and JVM start-ups, curl retry loops and ps aux, which must
#             stay quiet; a minimal Debian has none of them).
#   bench:    bpftrace and libbpf-tools' syscount, the baselines of make bench.
DEPS_GENERATE := clang-19 llvm-19 libbpf-dev
DEPS_TEST     := git ca-certificates postgresql containerd runc containernetworking-plugins \
	iptables conntrack iproute2 util-linux busybox-static chromium firefox-esr rsyslog \
	make gcc python3 nodejs default-jre-headless curl procps
DEPS_BENCH    := bpftrace libbpf-tools

# Where make test and make e2e keep the output of go test, and
# $(call digest,LOG,COMMAND): run COMMAND, keep its output in LOG too, and
# when it fails print what each failed test said (hack/failures.awk), so
# that the end of the log says why. The digest runs in a subshell: its exit
# gives the caller the status and must not end the caller's shell (make e2e
# still has to take the cluster down).
TEST_LOGS ?= $(CURDIR)/.cache/test-logs
digest = { $(2); } 2>&1 | tee $(1) || ( status=$$?; awk -f $(CURDIR)/hack/failures.awk $(1); exit $$status )

# $(call timed,PHASE,COMMAND): run COMMAND, then say how long PHASE took,
# whether it passed or failed, and keep its exit status.
timed = start=$$SECONDS; status=0; $(2) || status=$$?; \
	echo "== $(1): $$((SECONDS - start))s$$( [ $$status -eq 0 ] || echo ", FAILED (exit $$status)")"; exit $$status

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the static binary bin/errnowatch.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/errnowatch ./cmd/errnowatch

# Where `make run` keeps its alerts (SQLite) and spool.
RUN_DIR ?= $(CURDIR)/.errnowatch

.PHONY: run
run: build ## Run errnowatch standalone on this host: live failures and alerts, stored in .errnowatch/ (needs root).
	$(BIN)/errnowatch agent --no-kubernetes --rules $(CURDIR)/rules --embedded-collector $(RUN_DIR) \
		--spool-dir $(RUN_DIR)/spool --print-alerts --print-summary 5s \
		--metrics-address 127.0.0.1:9090 --health-address 127.0.0.1:9090 --ui-address 127.0.0.1:9444

.PHONY: deps
deps: ## Install the Debian packages that generate and test need, when missing (as root; quick when all are there).
	@hack/deps.sh $(DEPS_GENERATE) $(DEPS_TEST)

.PHONY: test
test: deps kube-bins cluster-bins prom-tools otelcol ## Run every test (as root: real kernel, real kube-apiserver), then the whole-system tests (make e2e).
	@mkdir -p $(TEST_LOGS)
	@$(call timed,unit and kernel tests (go test ./...),$(call digest,$(TEST_LOGS)/unit.log,$(GO) test -count=1 -timeout 40m $(GOTESTFLAGS) ./...))
	@$(call timed,whole-system tests (make e2e),$(MAKE) e2e)

# The whole-system tests (test/e2e) on a real single-node cluster that
# test/e2e/cluster starts in E2E_DIR: etcd, kube-apiserver, controller-manager,
# scheduler, kubelet on Debian's containerd and runc, kube-proxy, cluster DNS.
# Debian packages it needs: DEPS_TEST (make deps installs them).
E2E_DIR ?= /tmp/errnowatch-e2e
E2E_GOTESTFLAGS ?=

.PHONY: e2e-tools
e2e-tools: cluster-bins
	$(GO) build -o $(BIN)/e2e-node ./test/e2e/cmd/e2e-node
	CGO_ENABLED=0 $(GO) build -o $(BIN)/runc-wrapper ./test/e2e/cmd/runc-wrapper
	$(GO) build -modfile=$(CURDIR)/tools/go.mod -o $(BIN)/helm helm.sh/helm/v3/cmd/helm
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/errnowatch ./cmd/errnowatch

.PHONY: cluster-up
cluster-up: e2e-tools ## Start the single-node cluster in E2E_DIR with freshly built images (KUBECONFIG=$(E2E_DIR)/admin.kubeconfig).
	$(BIN)/e2e-node up --dir $(E2E_DIR) --bin-dir $(BIN) --repo $(CURDIR)

.PHONY: cluster-down
cluster-down: ## Stop the cluster in E2E_DIR and remove everything it made (processes, mounts, cgroups, iptables chains).
	@test -x $(BIN)/e2e-node || $(GO) build -o $(BIN)/e2e-node ./test/e2e/cmd/e2e-node
	$(BIN)/e2e-node down --dir $(E2E_DIR)

.PHONY: e2e
e2e: deps ## Whole-system tests: cluster-up, helm install, attacks, faults, load; cluster-down even on failure.
	$(MAKE) cluster-up
	mkdir -p $(TEST_LOGS)
	status=0; $(call digest,$(TEST_LOGS)/e2e.log,ERRNOWATCH_E2E_DIR=$(E2E_DIR) ERRNOWATCH_E2E_BIN=$(BIN) $(GO) test -count=1 -timeout 55m -v \
		$(E2E_GOTESTFLAGS) ./test/e2e/) || status=$$?; \
	$(MAKE) cluster-down; exit $$status

# How long `make fuzz` runs each fuzz target; FUZZPKGS narrows the packages.
FUZZTIME ?= 30s
FUZZPKGS ?= ./...

.PHONY: fuzz
fuzz: ## Run every Fuzz target in the repo for FUZZTIME each (default 30s); a failing input is saved under testdata/fuzz.
	@pkgs=$$($(GO) list $(FUZZPKGS)); found=0; \
	for pkg in $$pkgs; do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			found=$$((found+1)); echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done; \
	test $$found -gt 0 || { echo "no fuzz targets found in $(FUZZPKGS)"; exit 1; }; \
	echo "ran $$found fuzz targets for $(FUZZTIME) each"

.PHONY: screenshots
screenshots: deps ## Regenerate the web UI's screenshots in docs/ui/ (its layout tests in headless chromium).
	mkdir -p docs/ui
	UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) test -count=1 -run 'TestLayout' ./pkg/ui/

.PHONY: bench
bench: deps kube-bins ## Run the report's benchmarks, each against its baseline, and write docs/bench/report.md and charts.
	@hack/deps.sh $(DEPS_BENCH)
	$(GO) run ./hack/benchreport -out docs/bench

.PHONY: bench-all
bench-all: kube-bins ## Run every Go benchmark once, plain go test -bench output (for benchstat).
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 30m ./...

.PHONY: tools-clang
tools-clang: ## Install clang-19 and the libbpf headers from Debian when missing.
	@hack/deps.sh $(DEPS_GENERATE)

.PHONY: generate
generate: tools-clang proto manifests ## Regenerate BPF objects, syscall tables, API code and manifests.
	$(GO) generate ./pkg/...

.PHONY: verify
verify: generate ## Regenerate everything and fail if the committed files differ.
	@git diff --exit-code --stat HEAD && { new=$$(git status --porcelain --untracked-files=all); \
		test -z "$$new" || { echo "$$new"; false; }; } || \
		{ echo "generated files are out of date: run 'make generate' and commit the result" >&2; exit 1; }

.PHONY: proto
proto: ## Regenerate the committed Go code of the API (api/errnowatch/v1) with buf.
	$(TOOLS) buf generate

.PHONY: proto-lint
proto-lint: ## buf STANDARD lint, and buf breaking against branch main once main has the API.
	$(TOOLS) buf lint
	@if git cat-file -e main:api/errnowatch/v1/alert.proto 2>/dev/null; then \
		$(TOOLS) buf breaking --against '.git#branch=main'; \
	else echo "proto-lint: branch main has no API yet, nothing to check for breaking changes"; fi

# The Helm chart, and the plain manifests rendered from it. The chart ships a
# copy of the default rule pack (Helm reads files only inside the chart);
# chart-rules refreshes it, so `make verify` fails when the two drift.
HELM        := $(TOOLS) helm
CHART       := charts/errnowatch
# Value combinations that chart-lint and pkg/chart's tests check.
CHART_VALUES = $(sort $(wildcard $(CHART)/ci/*-values.yaml))
# The default install with certificates from a Secret the user creates:
# the chart's zero-config TLS makes random certificates on every render.
MANIFEST_FLAGS := --namespace errnowatch --set tls.mode=existingSecret

# promtool and promql-metrics, built from the Prometheus module in their own
# tool module (tools/promtool, GOWORK=off): pkg/chart's tests check the
# chart's PrometheusRule (promtool check rules, promtool test rules) and the
# metric names of every rule and dashboard query with them. The build tag
# remove_all_sd leaves out Prometheus's service discoveries (cloud SDKs),
# which checking rules never uses. Cached: rebuilt only when the module moves.
PROM_TOOLS_DIR := $(CURDIR)/tools/promtool
PROM_BUILD     := GOWORK=off $(GO) build -tags remove_all_sd -trimpath -ldflags='-s -w'

.PHONY: prom-tools
prom-tools: $(BIN)/promtool $(BIN)/promql-metrics ## Build bin/promtool and bin/promql-metrics for the chart's tests (cached; cold ~8 CPU-min).

$(BIN)/promtool: $(PROM_TOOLS_DIR)/go.mod $(PROM_TOOLS_DIR)/go.sum
	@$(call timed,build bin/promtool,cd $(PROM_TOOLS_DIR) && $(PROM_BUILD) -o $@ github.com/prometheus/prometheus/cmd/promtool)
	@touch $@

$(BIN)/promql-metrics: $(PROM_TOOLS_DIR)/go.mod $(PROM_TOOLS_DIR)/go.sum $(PROM_TOOLS_DIR)/promql-metrics/main.go
	@$(call timed,build bin/promql-metrics,cd $(PROM_TOOLS_DIR) && $(PROM_BUILD) -o $@ ./promql-metrics)
	@touch $@

.PHONY: chart-rules
chart-rules: ## Copy rules/default.yaml into the chart.
	cp rules/default.yaml $(CHART)/rules/default.yaml

.PHONY: manifests
manifests: chart-rules ## Render manifests/errnowatch.yaml (the default install, for kubectl apply) from the chart.
	{ sed 's/^/# /; s/ *$$//' manifests/header.txt; \
	  $(HELM) template errnowatch $(CHART) $(MANIFEST_FLAGS); } > manifests/errnowatch.yaml

.PHONY: chart-lint
chart-lint: chart-rules ## helm lint --strict with each value combination of charts/errnowatch/ci.
	@for f in $(CHART_VALUES); do echo "helm lint --strict -f $$f"; $(HELM) lint --strict --quiet $(CHART) -f $$f; done

.PHONY: lint
lint: proto-lint chart-lint ## go vet and staticcheck (pinned in tools/go.mod), buf lint, helm lint.
	$(GO) vet ./...
	$(TOOLS) staticcheck ./...

.PHONY: clean
clean: ## Remove built binaries (keeps the cached kube-apiserver and etcd).
	rm -f $(BIN)/errnowatch
