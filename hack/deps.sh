#!/usr/bin/env bash
# deps.sh PACKAGE...: install the Debian packages that are not installed yet.
# Idempotent and quick when everything is there (one dpkg-query, no
# apt-get); otherwise one `apt-get update` and one install.
set -euo pipefail

installed=" $(dpkg-query -W -f '${Package}:${db:Status-Status} ' "$@" 2>/dev/null || true) "
missing=()
for p in "$@"; do
	[[ $installed == *" $p:installed "* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run make as root (the tests need root anyway), or: apt-get install ${missing[*]}" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	echo "deps: missing packages ${missing[*]} and no apt-get: install them with your distribution's tools" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Packages with a daemon start it on install; the tests start private
# instances of their own (PostgreSQL servers per test, the e2e node's own
# containerd) and need none of the system's.
for p in "${missing[@]}"; do
	case "$p" in
	postgresql) service postgresql stop >/dev/null 2>&1 || true ;;
	containerd) service containerd stop >/dev/null 2>&1 || true ;;
	esac
done
