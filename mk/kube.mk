# kube.mk: real Kubernetes binaries built from the Go module proxy via the tool
# modules in tools/kube/: kube-apiserver + etcd for controller-runtime envtest
# (kube-bins), and the node a whole-system test runs on (cluster-bins: kubelet,
# kube-scheduler, kube-controller-manager, kube-proxy).
# Include from the top-level Makefile:  include mk/kube.mk
# Cold build ~15 min on 2 cores; up to date: instant (real file targets).

GO                 ?= go
KUBE_ROOT          := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
KUBE_BIN_DIR       := $(KUBE_ROOT)/bin
KUBE_TOOLS_DIR     := $(KUBE_ROOT)/tools/kube
KUBE_BUILD_FLAGS   := -trimpath -ldflags='-s -w'
# Stamp the real version into kube-apiserver (otherwise /version says v0.0.0-master).
KUBE_VERSION       := $(shell grep -oE 'k8s\.io/kubernetes v[0-9][^ ]*' $(KUBE_TOOLS_DIR)/kubernetes/go.mod | cut -d' ' -f2)
KUBE_VERSION_PARTS := $(subst ., ,$(patsubst v%,%,$(KUBE_VERSION)))
KUBE_VERSION_X     := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=$(word 1,$(KUBE_VERSION_PARTS)) \
	-X $(p).gitMinor=$(word 2,$(KUBE_VERSION_PARTS)) -X $(p).gitTreeState=clean)

# envtest looks for kube-apiserver and etcd in $KUBEBUILDER_ASSETS.
KUBEBUILDER_ASSETS ?= $(KUBE_BIN_DIR)
export KUBEBUILDER_ASSETS

.PHONY: kube-bins
kube-bins: $(KUBE_BIN_DIR)/kube-apiserver $(KUBE_BIN_DIR)/etcd ## Build bin/kube-apiserver and bin/etcd for envtest (cached; cold ~15 min).

# GOWORK=off: the tool modules must never join a workspace of the main module.
# touch: go build skips rewriting an up-to-date binary, which would keep it "older" than go.mod.
KUBE_NODE_CMDS := kubelet kube-scheduler kube-controller-manager kube-proxy

.PHONY: cluster-bins
cluster-bins: kube-bins $(addprefix $(KUBE_BIN_DIR)/,$(KUBE_NODE_CMDS)) ## Also build kubelet, kube-scheduler, kube-controller-manager and kube-proxy (cached; cold ~10 min more).

# Every Kubernetes command comes from the one tool module, so they share its
# build cache: after kube-apiserver, each of the others takes a few minutes.
$(addprefix $(KUBE_BIN_DIR)/,kube-apiserver $(KUBE_NODE_CMDS)): $(KUBE_BIN_DIR)/%: $(KUBE_TOOLS_DIR)/kubernetes/go.mod $(KUBE_TOOLS_DIR)/kubernetes/go.sum
	@$(call timed,build bin/$*,cd $(KUBE_TOOLS_DIR)/kubernetes && GOWORK=off $(GO) build -trimpath -ldflags='-s -w $(strip $(KUBE_VERSION_X))' -o $@ k8s.io/kubernetes/cmd/$*)
	@touch $@

$(KUBE_BIN_DIR)/etcd: $(KUBE_TOOLS_DIR)/etcd/go.mod $(KUBE_TOOLS_DIR)/etcd/go.sum
	@$(call timed,build bin/etcd,cd $(KUBE_TOOLS_DIR)/etcd && GOWORK=off $(GO) build $(KUBE_BUILD_FLAGS) -o $@ go.etcd.io/etcd/server/v3)
	@touch $@
