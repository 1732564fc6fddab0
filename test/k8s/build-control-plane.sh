#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver + etcd, optionally kubectl) from Go modules
# for the Kubernetes tests. The binaries land in a cache directory outside the repository, keyed by
# version, so a rerun finds them and returns at once.
#
#   bash test/k8s/build-control-plane.sh            # build (or reuse) and print the bin directory
#   bash test/k8s/build-control-plane.sh --cached-only   # print the bin directory, or exit 3 if not built
#   TIMESTORE_K8S_BIN_DIR=/opt/k8s bash ...         # choose the cache directory
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@v`: k8s.io/kubernetes' go.mod replaces
# every k8s.io/* staging module with a directory inside its own tree, and go install refuses modules
# with replace directives. A throwaway main module that requires k8s.io/kubernetes and replaces each
# staging module with its published v0.x twin (same minor and patch) builds the same code.
set -euo pipefail

K8S_VERSION="${TIMESTORE_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${TIMESTORE_ETCD_VERSION:-v3.7.0}"
WITH_KUBECTL="${TIMESTORE_K8S_WITH_KUBECTL:-1}"
BIN_DIR="${TIMESTORE_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/timestore-k8s/kubernetes-${K8S_VERSION}-etcd-${ETCD_VERSION}}"

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

wanted=(kube-apiserver etcd)
[ "$WITH_KUBECTL" = 1 ] && wanted+=(kubectl)
missing=0
for b in "${wanted[@]}"; do [ -x "$BIN_DIR/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then
  log "cached in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi
if [ "${1:-}" = --cached-only ]; then
  log "not built yet in $BIN_DIR: run bash test/k8s/build-control-plane.sh (about 15 min on 2 cores)"
  exit 3
fi

# Go as the polyglot machines install it, for a shell whose PATH lacks it.
command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"; } || true
command -v go >/dev/null || { log "go is required (Go >= 1.26 for Kubernetes ${K8S_VERSION})"; exit 1; }
mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)

# v1.37.2 -> v0.37.2: the staging modules are tagged with the same minor and patch under v0.
staging_version="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  local dir="$work/kubernetes"
  mkdir -p "$dir"
  (
    cd "$dir"
    local modfile
    modfile="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$modfile" ] || { log "could not download k8s.io/kubernetes@${K8S_VERSION}"; exit 1; }
    local go_directive
    go_directive="$(sed -n 's/^go \(.*\)$/\1/p' "$modfile" | head -n1)"
    {
      echo "module timestore.local/control-plane"
      echo
      echo "go ${go_directive}"
      # k8s.io/kubernetes pins its runtime behaviour with godebug lines; keep them.
      grep '^godebug ' "$modfile" || true
      echo
      echo "require k8s.io/kubernetes ${K8S_VERSION}"
      echo
      echo "replace ("
      sed -n "s#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\t\1 => \1 ${staging_version}#p" "$modfile"
      echo ")"
    } >go.mod
    local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver)
    [ "$WITH_KUBECTL" = 1 ] && pkgs+=(k8s.io/kubernetes/cmd/kubectl)
    {
      echo "//go:build tools"
      echo "package tools"
      echo
      for p in "${pkgs[@]}"; do echo "import _ \"$p\""; done
    } >tools.go
    log "resolving k8s.io/kubernetes ${K8S_VERSION} (staging modules at ${staging_version})"
    go mod tidy -e >/dev/null 2>"$work/tidy.log" || { cat "$work/tidy.log" >&2; exit 1; }
    local ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitTreeState=clean"
      local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
      ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    done
    for p in "${pkgs[@]}"; do
      log "go build ${p}"
      go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$(basename "$p").tmp" "$p"
      mv "$BIN_DIR/$(basename "$p").tmp" "$BIN_DIR/$(basename "$p")"
    done
  )
}

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir"
  (
    cd "$dir"
    local modfile
    modfile="$(go mod download -json "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    local go_directive
    go_directive="$(sed -n 's/^go \(.*\)$/\1/p' "$modfile" | head -n1)"
    printf 'module timestore.local/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$go_directive" "$ETCD_VERSION" >go.mod
    printf '//go:build tools\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    log "resolving go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
    go mod tidy -e >/dev/null 2>"$work/etcd-tidy.log" || { cat "$work/etcd-tidy.log" >&2; exit 1; }
    log "go build go.etcd.io/etcd/server/v3 (etcd)"
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
  )
}

[ -x "$BIN_DIR/etcd" ] || build_etcd
need_k8s=0
[ -x "$BIN_DIR/kube-apiserver" ] || need_k8s=1
[ "$WITH_KUBECTL" = 1 ] && [ ! -x "$BIN_DIR/kubectl" ] && need_k8s=1
[ "$need_k8s" = 0 ] || build_kubernetes

log "built in $(( $(date +%s) - start ))s into $BIN_DIR"
echo "$BIN_DIR"
