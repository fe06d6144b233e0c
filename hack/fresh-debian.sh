#!/usr/bin/env bash
# fresh-debian.sh [COMMIT]: run .ci/run in a minimal Debian 12, the way a
# newcomer's fresh machine would: `debootstrap --variant=minbase` (no
# compiler, no make, no git), plus Go, make and git, the prerequisites the
# README names. Everything else must come from `make deps`. Needs root and
# debootstrap (apt-get install debootstrap); takes 2 minutes to build the
# root, then as long as .ci/run.
#
# The root shares this machine's kernel, cgroups and network, as a node
# would: /proc, /sys (with its cgroup and bpf mounts) and /dev are mounted
# in, and its own / is a mount point (runc makes / a slave mount). Go
# comes from this machine, and so do its module and build caches, so that
# the run checks the Debian packages and the commands rather than
# recompiling Kubernetes. FRESH_COLD=1 gives it empty module and build
# caches instead: a cold run, as on a machine that never built Go.
# Run nothing else that uses the e2e node's ports or cgroups meanwhile.
# FRESH_CMD runs another command in the clone instead of .ci/run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:-HEAD}
root=${FRESH_ROOT:-$(mktemp -d /var/tmp/errnowatch-fresh.XXXXXX)}
goroot=$(go env GOROOT)
gomodcache=$(go env GOMODCACHE)
gocache=$(go env GOCACHE)
if [ "${FRESH_COLD:-}" = 1 ]; then
	gomodcache=$root.gomodcache gocache=$root.gocache
	mkdir -p "$gomodcache" "$gocache"
fi

mounts=()
mnt() { mount "$@"; mounts+=("${@: -1}"); }
cleanup() {
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount -l "${mounts[i]}" 2>/dev/null || true
	done
}
trap cleanup EXIT

# mktemp makes it 0700; a machine's / is 0755 (the tests drop to nobody).
chmod 755 "$root"
echo "fresh-debian: building a minimal Debian 12 in $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
	{ echo "fresh-debian: debootstrap failed, see $root.debootstrap.log" >&2; exit 1; }
cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"

mnt --bind "$root" "$root"
mount --make-private "$root"
mnt -t proc proc "$root/proc"
mnt --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mnt --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mkdir -p "$root/usr/local/go" "$root/root/go/pkg/mod" "$root/root/.cache/go-build"
mnt --bind -o ro "$goroot" "$root/usr/local/go"
mnt --bind "$gomodcache" "$root/root/go/pkg/mod"
mnt --bind "$gocache" "$root/root/.cache/go-build"

in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
echo "fresh-debian: installing the README's prerequisites (make, git)"
in_root bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends make git ca-certificates >/dev/null'
# The machine's own CAs (an egress proxy's, say) belong to its network, not
# to Debian: a cold run downloads modules through it.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
	in_root update-ca-certificates >/dev/null
fi
git clone -q "$repo" "$root/root/errnowatch"
git -C "$root/root/errnowatch" checkout -q "$commit"
cmd=${FRESH_CMD:-bash .ci/run}
echo "fresh-debian: $cmd on $(git -C "$root/root/errnowatch" log --oneline -1)"
in_root bash -c "cd /root/errnowatch && $cmd"
