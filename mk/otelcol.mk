# otelcol.mk: an OpenTelemetry Collector built from its Go modules
# (tools/otelcol: OTLP and syslog receivers, file exporter), the real
# receiver pkg/sink's tests deliver to. Never shipped.
# Include from the top-level Makefile:  include mk/otelcol.mk
# Cold build (empty Go cache): 5.8 min of CPU, 15.8 min wall on the 2-core
# machine shared with other builds (load 9-16); about 3-4 min idle.
# Up to date: instant (a real file target).

GO              ?= go
OTELCOL_ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
OTELCOL_DIR     := $(OTELCOL_ROOT)/tools/otelcol
OTELCOL_BIN     := $(OTELCOL_ROOT)/bin/otelcol

.PHONY: otelcol
otelcol: $(OTELCOL_BIN) ## Build bin/otelcol, the OpenTelemetry Collector the sink tests deliver to (cached; cold: minutes of CPU, see mk/otelcol.mk).

# GOWORK=off: the tool module must never join a workspace of the main module.
# touch: go build skips rewriting an up-to-date binary, which would keep it "older" than go.mod.
$(OTELCOL_BIN): $(OTELCOL_DIR)/go.mod $(OTELCOL_DIR)/go.sum $(OTELCOL_DIR)/main.go
	@$(call timed,build bin/otelcol,cd $(OTELCOL_DIR) && GOWORK=off $(GO) build -trimpath -ldflags='-s -w' -o $@ .)
	@touch $@
