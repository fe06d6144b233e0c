#!/usr/bin/env bash
# Regenerates the k8s.io/* replace block of tools/kube/kubernetes/go.mod.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...)
# at v0.0.0 and replaces them with ./staging/src/k8s.io/..., which does not work
# for a consumer. Replace every one of them with its published v0.<minor>.<patch> tag.
#
# Usage: tools/kube/gen-replaces.sh [KUBE_VERSION]   (default: version required in go.mod)
set -euo pipefail

cd "$(dirname "$0")/kubernetes"

kube_version="${1:-$(go mod edit -json | jq -r '.Require[] | select(.Path=="k8s.io/kubernetes") | .Version')}"
staging_version="v0.${kube_version#v1.}" # v1.37.2 -> v0.37.2

kube_gomod="$(go mod download -json "k8s.io/kubernetes@${kube_version}" | jq -r .GoMod)"

# Drop any existing k8s.io/* replaces, then add one per staging replace upstream.
args=()
for old in $(go mod edit -json | jq -r '(.Replace // [])[] | .Old.Path | select(startswith("k8s.io/"))'); do
	args+=("-dropreplace=${old}")
done
for mod in $(go mod edit -json "${kube_gomod}" |
	jq -r '.Replace[] | select(.New.Path | startswith("./staging/")) | .Old.Path'); do
	args+=("-replace=${mod}=${mod}@${staging_version}")
done

go mod edit -require="k8s.io/kubernetes@${kube_version}" "${args[@]}"
echo "k8s.io/kubernetes ${kube_version}: $(grep -c "=> k8s.io/.* ${staging_version}" go.mod) staging replaces -> ${staging_version}" >&2
