#!/usr/bin/env bash
# Brings a real Kubernetes API server for the tests: kube-apiserver v1.20.2
# built from Debian's own `kubernetes` source package with Debian's Go 1.19
# (no registry ships the binary), Debian's etcd, and kubectl. Built once per machine
# into a cache outside the repository. Progress goes to stderr; stdout carries
# only the `export` lines that scripts/test evaluates.
set -euo pipefail

version=v1.20.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tresor/kube-apiserver-$version"
binary="$cache/kube-apiserver"

log() { echo "kube.sh: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if [[ -z $apt_updated ]]; then
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

missing=()
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
# The KMS tests read what the API server stored straight from etcd.
[[ -x /usr/bin/etcdctl ]] || missing+=(etcd-client)
# The tests make the API server's certificates with openssl and drive it with
# kubectl: Debian's (kubernetes-client, built from the same source package as
# the API server below) when none is on the PATH.
command -v openssl >/dev/null || missing+=(openssl)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [[ ! -x $binary ]]; then
    [[ -x /usr/lib/go-1.19/bin/go ]] || missing+=(golang-1.19-go)
    command -v make >/dev/null || missing+=(make)
    command -v patch >/dev/null || missing+=(patch)
    command -v rsync >/dev/null || missing+=(rsync)
fi
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

build() {
    local work="$cache/build"
    rm -rf "$work"
    mkdir -p "$work/lists/partial" "$work/archives/partial"
    # A private deb-src list: /etc/apt stays as it is.
    cat >"$work/sources.list" <<'LIST'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
    local apt_opts=(
        -o "Dir::Etc::SourceList=$work/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$work/lists"
        -o "Dir::Cache=$work"
        -o "APT::Sandbox::User=root"
    )
    log "fetching Debian's kubernetes source package"
    apt-get "${apt_opts[@]}" update -qq >&2
    (cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq kubernetes >&2)
    local orig debian
    orig=$(ls "$work"/kubernetes_*.orig.tar.* | head -n1)
    debian=$(ls "$work"/kubernetes_*.debian.tar.* | head -n1)
    mkdir -p "$work/src"
    tar -xf "$orig" -C "$work/src" --strip-components=1
    tar -xf "$debian" -C "$work/src"
    log "applying Debian's patches"
    (
        cd "$work/src"
        while read -r p; do
            [[ -z $p || $p == \#* ]] && continue
            patch -p1 -s <"debian/patches/$p" >&2
        done <debian/patches/series
    )
    log "building kube-apiserver $version with Go 1.19 (several minutes)"
    local start=$SECONDS
    (
        cd "$work/src"
        export PATH=/usr/lib/go-1.19/bin:$PATH GOTOOLCHAIN=local GOPROXY=off \
            GOFLAGS=-tags=providerless KUBE_GIT_VERSION=$version KUBE_GIT_MAJOR=1 \
            KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean KUBE_BUILD_PLATFORMS=linux/amd64 \
            GOCACHE="$work/gocache" GOPATH="$work/gopath"
        make gen_openapi >&2
        hack/make-rules/build.sh cmd/kube-apiserver >&2
    )
    install -m 0755 "$work/src/_output/local/bin/linux/amd64/kube-apiserver" "$binary.tmp"
    mv "$binary.tmp" "$binary"
    log "built $binary in $((SECONDS - start)) s"
    rm -rf "$work"
}

if [[ ! -x $binary ]]; then
    mkdir -p "$cache"
    # One build per machine even when several test runs start at once.
    exec 9>"$cache/.lock"
    flock 9
    [[ -x $binary ]] || build
    flock -u 9
fi

echo "export TRESOR_TEST_KUBE_APISERVER=$binary"
echo "export TRESOR_TEST_ETCD=/usr/bin/etcd"
echo "export TRESOR_TEST_ETCDCTL=/usr/bin/etcdctl"
