#!/usr/bin/env bash
# Builds the real control-plane binaries from Go modules into a cache directory
# (outside the repository) and prints that directory. Reuses a complete build.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl: k8s.io/kubernetes (go.mod here)
#   etcd: go.etcd.io/etcd/server/v3 at the version Kubernetes pins (cmd/etcd)
#   kwok, kwokctl: sigs.k8s.io/kwok;  helm: helm.sh/helm/v3  (go install, pinned below)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${SCALE_SCHED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-sched}"
bin="$cache/bin-kube${KUBE_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

complete() { for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
ldflags="-s -w"
kube_ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
start=$SECONDS
cd "$here"
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$bin/$t" ] && continue
  echo "building $t ${KUBE_VERSION} ..." >&2
  go build -trimpath -ldflags "$kube_ldflags" -o "$bin/$t.tmp" "k8s.io/kubernetes/cmd/$t" && mv "$bin/$t.tmp" "$bin/$t"
done
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd ..." >&2
  go build -trimpath -ldflags "$ldflags" -o "$bin/etcd.tmp" ./cmd/etcd && mv "$bin/etcd.tmp" "$bin/etcd"
fi
for spec in "kwok:sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "kwokctl:sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}" "helm:helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"; do
  t="${spec%%:*}"; [ -x "$bin/$t" ] && continue
  echo "building $t ..." >&2
  GOBIN="$bin" go install -trimpath -ldflags "$ldflags" "${spec#*:}"
done
echo "built in $((SECONDS - start)) s" >&2
echo "$bin"
