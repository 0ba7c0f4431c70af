#!/usr/bin/env bash
# Builds the real programs the tests run (kube-apiserver & co, kubelet, etcd, KEDA, kwok, containerd, CoreDNS)
# from the Go module proxy, once per version, into a per-user cache outside the repository, and prints the
# directory that holds them.
#
#   hack/tools.sh kubernetes   ->  ~/.cache/llm-d/tools/kubernetes-v1.36.3-go1.26.8-1a2b3c4d5e6f
#
# Each set is its own small module under test/tools/<name>: a go.mod whose `tool` lines name the programs and
# whose first require is the module that gives the set its version. Its dependencies never reach the project's
# go.mod. The cache key is that go.mod and go.sum plus the Go version: changing a version rebuilds, anything
# else reuses. Concurrent callers (parallel test packages) wait on one lock instead of building twice.
set -euo pipefail

name=${1:?usage: hack/tools.sh <name of a directory under test/tools>}
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/test/tools/$name"
[ -f "$mod/go.mod" ] || { echo "tools.sh: no tools module at $mod" >&2; exit 2; }

cache=${LLMD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-d/tools}
json=$(cd "$mod" && go mod edit -json | tr -d '\n\t ')
tools=$(sed -n 's/.*"Tool":\[\(.*\)\].*/\1/p' <<<"$json" | tr '{}' '\n\n' | sed -n 's/^"Path":"\(.*\)"$/\1/p')
# The set's version is that of the module the first program comes from; for a program of the tools module's
# own (a custom main, as test/tools/coredns has), that of the module it builds on, its first requirement.
first=$(head -n1 <<<"$tools")
requires=$(sed -n 's/.*"Require":\[\([^]]*\)\].*/\1/p' <<<"$json" | tr '{}' '\n\n' |
	sed -n 's/^"Path":"\([^"]*\)","Version":"\([^"]*\)".*$/\1 \2/p')
version=$(while read -r path v; do case "$first/" in "$path"/*) echo "${#path} $v" ;; esac; done <<<"$requires" |
	sort -n | tail -n1 | cut -d' ' -f2)
[ -n "$version" ] || version=$(head -n1 <<<"$requires" | cut -d' ' -f2)

# How a set is compiled. Every program is static (CGO_ENABLED=0), since some run in images built from
# scratch (KEDA's) or as the node's own daemons (containerd, kubelet). KEDA is compiled as test/kedacontract's
# `go test` compiles it (no -trimpath; the Makefile runs that test with CGO_ENABLED=0 too), so that the two
# share Go's build cache: KEDA's scalers and cloud SDKs are the slowest build here. containerd leaves out the
# snapshotters that need C libraries, as its own static builds do.
flags=(-trimpath)
case "$name" in
keda) flags=() ;;
containerd) flags+=(-tags=no_btrfs,no_devmapper,no_zfs) ;;
esac
# The key is the module's go.mod and go.sum, plus the flags where they are not the default.
extra=""
[ "${flags[*]}" = "-trimpath" ] || extra="flags: ${flags[*]} cgo: 0"
key=$( (cat "$mod/go.mod" "$mod/go.sum"; [ -z "$extra" ] || echo "$extra") | sha256sum | cut -c1-12)
dir="$cache/$name-$version-$(go env GOVERSION)-$key"

if [ ! -f "$dir/.done" ]; then
	mkdir -p "$cache"
	exec 9>"$cache/.$name.lock"
	flock 9
	if [ ! -f "$dir/.done" ]; then
		tmp=$(mktemp -d "$cache/.$name.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "tools.sh: building $name $version into $dir (first run only, takes minutes)" >&2
		start=$(date +%s)
		for pkg in $tools; do
			# A program is named for its directory; etcd's is the module root (go.etcd.io/etcd/server/v3).
			bin=$(basename "$pkg")
			case "$pkg" in go.etcd.io/etcd/server/*) bin=etcd ;; esac
			(cd "$mod" && CGO_ENABLED=0 go build "${flags[@]}" -ldflags='-s -w' -o "$tmp/$bin" "$pkg")
		done
		touch "$tmp/.done"
		rm -rf "$dir"
		mv "$tmp" "$dir"
		trap - EXIT
		echo "tools.sh: built $name in $(($(date +%s) - start))s" >&2
	fi
fi
echo "$dir"
