#!/usr/bin/env bash
# make k8s-check: renders every kustomization under deploy/k8s and validates the result and
# every manifest file against the Kubernetes schemas (the oldest and newest versions we
# support; strict: an unknown field is an error), KEDA's kinds against deploy/k8s/schemas,
# plus Hookline's own consistency (scripts/k8s_validate.py). Installs kubernetes-validate
# from PyPI into .run/k8s-venv on first use; renders with kubectl (>= 1.27, for kustomize
# 5) and says so when it is missing. No cluster is needed or contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

versions="${K8S_VERSIONS:-1.30.0,1.37.0}"
venv="$RUN_DIR/k8s-venv"
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  say "installing kubernetes-validate into $venv"
  have python3 || die "python3 is needed (apt-get install python3-venv)"
  python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi

work="$RUN_DIR/k8s"
rm -rf "$work" && mkdir -p "$work"

# Every manifest file as written (kustomization files and patches are not manifests).
files=()
while IFS= read -r f; do files+=("$f"); done < <(
  find deploy/k8s -name '*.yaml' ! -name kustomization.yaml -print | sort)
say "validating ${#files[@]} manifest files"
"$venv/bin/python" scripts/k8s_validate.py --versions "$versions" "${files[@]}"

# Every kustomization that renders on its own (components only render inside one).
# kubectl comes with this machine's image; no registry we reach has a kubectl recent
# enough (Debian's 1.20 embeds kustomize 2, which knows neither components nor labels).
if ! have kubectl; then
  warn "SKIPPED rendering: kubectl not found (install kubectl >= 1.27); the files above were validated"
  exit 0
fi
rendered=()
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir="${dir%/}"
  out="$work/$(echo "$dir" | tr / _).yaml"
  say "rendering $dir"
  # A warning (a deprecated field, say) fails the check: it is how kustomize says what
  # its next version will refuse.
  kubectl kustomize "$dir" >"$out" 2>"$out.err" || { cat "$out.err" >&2; die "$dir does not render"; }
  if [ -s "$out.err" ]; then cat "$out.err" >&2; die "kustomize warned about $dir"; fi
  rendered+=("$out")
done
say "validating the rendered output"
"$venv/bin/python" scripts/k8s_validate.py --versions "$versions" --rendered "${rendered[@]}"
say "deploy/k8s is valid"
