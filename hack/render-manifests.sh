#!/usr/bin/env bash
# Renders manifests/ from the chart (the single source): plain YAML for `kubectl apply -f`.
#   hack/render-manifests.sh            write manifests/
#   hack/render-manifests.sh --check    exit 1 if manifests/ differs from what the chart renders
# helm: $HELM, else the one hack/cluster/build.sh builds from Go modules, else helm on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$root/charts/scale-scheduler"
out="$root/manifests"

helm_bin() {
  if [ -n "${HELM:-}" ]; then echo "$HELM"; return; fi
  local bin; bin="$("$root/hack/cluster/build.sh" 2>/dev/null || true)"
  if [ -n "$bin" ] && [ -x "$bin/helm" ]; then echo "$bin/helm"; return; fi
  command -v helm || { echo "helm not found: run hack/cluster/build.sh or set HELM=/path/to/helm" >&2; exit 2; }
}
helm="$(helm_bin)"

render() {  # $1: output directory
  mkdir -p "$1"
  # CRDs are not templated by helm; ship them first so the rest applies in one go.
  if compgen -G "$chart/crds/*.yaml" > /dev/null; then cat "$chart"/crds/*.yaml > "$1/00-crds.yaml"; else rm -f "$1/00-crds.yaml"; fi
  {
    echo "apiVersion: v1"
    echo "kind: Namespace"
    echo "metadata:"
    echo "  name: scale-scheduler"
  } > "$1/01-namespace.yaml"
  # Fixed release name and namespace so the output is stable; same values as `helm install` defaults.
  # --kube-version: offline, helm assumes v1.20, which the chart's kubeVersion (>=1.29) refuses.
  "$helm" template scale-scheduler "$chart" --namespace scale-scheduler --kube-version 1.34.0 \
    > "$1/02-scale-scheduler.yaml"
}

if [ "${1:-}" = "--check" ]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  render "$tmp"
  if diff -ru --exclude=samples "$out" "$tmp" >&2; then echo "manifests/ is in sync with the chart"; exit 0; fi
  echo "manifests/ is out of date: run hack/render-manifests.sh" >&2; exit 1
fi
render "$out"
echo "rendered $out from $chart"
