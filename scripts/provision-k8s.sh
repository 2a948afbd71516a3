#!/usr/bin/env bash
# Provision the real Kubernetes parts that rekindle's tests run against:
# kube-apiserver and kube-controller-manager 1.20.2 built from Debian's source
# package, Debian's etcd, and `kubelet-writer`, a small Go program built in the
# same tree that writes volumes through the kubelet's own AtomicWriter.
#
# Idempotent: binaries are cached in ~/.cache/rekindle/k8s-1.20.2/ (or
# $REKINDLE_K8S_BIN) and rebuilt only when missing; the writer is rebuilt when
# its source changes. The first run takes about 12 minutes on 2 cores.
# -E: the ERR trap below also fires inside functions.
set -Eeuo pipefail

readonly K8S_VERSION=1.20.2
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly CACHE="${HOME}/.cache/rekindle"
readonly SRC_DIR="${CACHE}/src"
readonly TREE="${SRC_DIR}/kubernetes-${K8S_VERSION}"
readonly BIN_DIR="${REKINDLE_K8S_BIN:-${CACHE}/k8s-${K8S_VERSION}}"
readonly WRITER_SRC="${REPO_ROOT}/crates/rekindle-testenv/kubelet-writer/main.go"
readonly DEB_SRC_FILE=/etc/apt/sources.list.d/rekindle-kubernetes-src.sources
# Suites tried in order for the `kubernetes` source package at version 1.20.2.
readonly SRC_SUITES=(bookworm bullseye)

STEP="start"
START_SECONDS=${SECONDS}

say() { printf 'provision-k8s: %s\n' "$*" >&2; }

die() {
    say "step '${STEP}' failed: $*"
    exit 1
}

# Any command failing under `set -e` lands here, so every failure names its step.
on_error() {
    local status=$?
    say "step '${STEP}' failed (exit status ${status}) at line ${BASH_LINENO[0]}: ${BASH_COMMAND}"
    exit "${status}"
}
trap on_error ERR

step() {
    STEP="$1"
    say "${STEP}"
}

as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "needs root (or sudo) to run: $*"
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

have_binary() { [[ -x "$1" && -s "$1" ]]; }

install_packages() {
    step "install Debian packages"
    local wanted=(golang-go etcd-server rsync openssl dpkg-dev) missing=() pkg
    for pkg in "${wanted[@]}"; do
        is_installed "${pkg}" || missing+=("${pkg}")
    done
    if ((${#missing[@]} == 0)); then
        return
    fi
    say "installing: ${missing[*]}"
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

# Debian versions this upstream release as 1.20.5+really1.20.2 (a 1.20.5 upload
# that was reverted), so accept an optional `+really` prefix.
source_version() {
    { apt-cache showsrc kubernetes 2>/dev/null || true; } \
        | sed -n -E "s/^Version: (([^ ]*really)?${K8S_VERSION//./\\.}[-+][^ ]*)$/\1/p" | head -n1
}

# True when apt knows the kubernetes source package at the wanted version.
source_known() {
    [[ -n "$(source_version)" ]]
}

write_deb_src() {
    local suite="$1"
    as_root tee "${DEB_SRC_FILE}" >/dev/null <<EOF
# Added by rekindle's scripts/provision-k8s.sh: source of Kubernetes ${K8S_VERSION}.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${suite}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

add_deb_src() {
    step "add a deb-src entry for kubernetes ${K8S_VERSION}"
    if source_known; then
        return
    fi
    local suite
    for suite in "${SRC_SUITES[@]}"; do
        say "trying deb-src ${suite}"
        write_deb_src "${suite}"
        as_root apt-get update -qq || die "apt-get update failed after adding deb-src ${suite}"
        if source_known; then
            say "kubernetes ${K8S_VERSION} source found in ${suite}"
            return
        fi
    done
    as_root rm -f "${DEB_SRC_FILE}"
    die "no suite in (${SRC_SUITES[*]}) has the kubernetes ${K8S_VERSION} source package"
}

fetch_source() {
    step "fetch the kubernetes ${K8S_VERSION} source package"
    if [[ -f "${TREE}/Makefile" && -d "${TREE}/vendor" ]]; then
        return
    fi
    add_deb_src
    mkdir -p "${SRC_DIR}"
    # Download and unpack in a scratch directory, then move into place, so an
    # interrupted run never leaves a half tree that looks complete.
    local scratch
    scratch="$(mktemp -d "${SRC_DIR}/fetch.XXXXXX")"
    local version
    version="$(source_version)"
    (cd "${scratch}" && apt-get source -qq "kubernetes=${version}") \
        || die "apt-get source kubernetes=${version} failed"
    local unpacked
    unpacked="$(find "${scratch}" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
    [[ -n "${unpacked}" && -f "${unpacked}/Makefile" ]] || die "source package did not unpack to a kubernetes tree"
    [[ -d "${unpacked}/vendor" ]] || die "source tree has no vendor/ directory"
    rm -rf "${TREE}"
    mv "${unpacked}" "${TREE}"
    rm -rf "${scratch}"
}

# Source fixes applied to the vendored tree before building. Bump FIXES when
# they change: binaries built without the current set are rebuilt.
FIXES="reflect2-go118-1"

# Go >= 1.18 changed reflect.mapiterinit to fill an iterator the caller
# allocates; the vendored modern-go/reflect2 v1.0.1 still calls it the old way
# and reads a pointer that was never returned. json-iterator iterates maps
# through it when kube-apiserver encodes a custom resource's metadata, so the
# first create of any CRD object crashes the apiserver (SIGSEGV in
# mapiternext). The call is rewritten to the new signature with an iterator of
# the runtime's full size (Go 1.19's layout).
fix_reflect2() {
    local dir="${TREE}/vendor/github.com/modern-go/reflect2"
    [[ -f "${dir}/unsafe_link.go" && -f "${dir}/unsafe_map.go" ]] || die "vendored reflect2 not found in ${dir}"
    if grep -q 'rekindle: go1.18 iterator' "${dir}/unsafe_link.go"; then
        return
    fi
    say "fixing the vendored modern-go/reflect2 for Go >= 1.18"
    perl -0pi -e 's/func mapiterinit\(rtype unsafe\.Pointer, m unsafe\.Pointer\) \*hiter/func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)/' "${dir}/unsafe_link.go"
    perl -0pi -e 's|\t// rest fields are ignored\n|\t// rekindle: go1.18 iterator. The rest of the runtime'"'"'s layout, so that\n\t// mapiterinit has the whole struct to write into.\n\tt           unsafe.Pointer\n\th           unsafe.Pointer\n\tbuckets     unsafe.Pointer\n\tbptr        unsafe.Pointer\n\toverflow    *[]unsafe.Pointer\n\toldoverflow *[]unsafe.Pointer\n\tstartBucket uintptr\n\toffset      uint8\n\twrapped     bool\n\tB           uint8\n\ti           uint8\n\tbucket      uintptr\n\tcheckBucket uintptr\n|' "${dir}/unsafe_link.go"
    cat >>"${dir}/unsafe_link.go" <<'GO'

// newMapIterator allocates the iterator that mapiterinit fills (Go >= 1.18).
func newMapIterator(rtype unsafe.Pointer, m unsafe.Pointer) *hiter {
	it := new(hiter)
	mapiterinit(rtype, m, it)
	return it
}
GO
    perl -0pi -e 's/hiter:(\s+)mapiterinit\(/hiter:$1newMapIterator(/' "${dir}/unsafe_map.go"
    grep -q 'rekindle: go1.18 iterator' "${dir}/unsafe_link.go" && grep -q 'newMapIterator(' "${dir}/unsafe_map.go" \
        || die "could not apply the reflect2 fix to ${dir}"
}

build_control_plane() {
    step "build kube-apiserver and kube-controller-manager (about 12 minutes on 2 cores)"
    local out="${TREE}/_output/bin"
    if ! have_binary "${out}/kube-apiserver" || ! have_binary "${out}/kube-controller-manager"; then
        # A failed make leaves empty generator binaries behind that break the next one.
        rm -rf "${TREE}/_output"
        command -v rsync >/dev/null || die "rsync is missing (the kubernetes make needs it)"
        (cd "${TREE}" && make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") \
            || die "make WHAT=\"cmd/kube-apiserver cmd/kube-controller-manager\" failed; see the output above"
    fi
    have_binary "${out}/kube-apiserver" || die "make produced no ${out}/kube-apiserver"
    have_binary "${out}/kube-controller-manager" || die "make produced no ${out}/kube-controller-manager"
    install -m 0755 "${out}/kube-apiserver" "${out}/kube-controller-manager" "${BIN_DIR}/"
    echo "${FIXES}" >"${BIN_DIR}/control-plane.fixes"
}

build_writer() {
    step "build kubelet-writer"
    [[ -f "${WRITER_SRC}" ]] || die "${WRITER_SRC} is missing"
    # Go 1.19 refuses `go build -mod=vendor` in this tree ("updates to go.mod
    # needed"), so build in GOPATH mode with the tree linked at its import path.
    local gopath="${TREE}/.go"
    local pkg_dir="${gopath}/src/k8s.io/kubernetes"
    mkdir -p "$(dirname "${pkg_dir}")"
    ln -sfn "${TREE}" "${pkg_dir}"
    # The main package must sit inside the tree for the tree's vendor/ to apply.
    mkdir -p "${TREE}/cmd/rekindle-kubelet-writer"
    cp "${WRITER_SRC}" "${TREE}/cmd/rekindle-kubelet-writer/main.go"
    (cd "${pkg_dir}/cmd/rekindle-kubelet-writer" \
        && GO111MODULE=off GOPATH="${gopath}" GOFLAGS='' go build -o "${BIN_DIR}/kubelet-writer.new" .) \
        || die "go build of kubelet-writer failed; see the output above"
    mv "${BIN_DIR}/kubelet-writer.new" "${BIN_DIR}/kubelet-writer"
    sha256sum "${WRITER_SRC}" | cut -d' ' -f1 >"${BIN_DIR}/kubelet-writer.sha256"
}

writer_is_current() {
    have_binary "${BIN_DIR}/kubelet-writer" || return 1
    [[ -f "${BIN_DIR}/kubelet-writer.sha256" ]] || return 1
    [[ "$(sha256sum "${WRITER_SRC}" | cut -d' ' -f1)" == "$(cat "${BIN_DIR}/kubelet-writer.sha256")" ]]
}

link_etcd() {
    step "link etcd"
    local etcd
    etcd="$(command -v etcd || true)"
    [[ -n "${etcd}" ]] || die "etcd is not on PATH (package etcd-server)"
    ln -sfn "${etcd}" "${BIN_DIR}/etcd"
}

main() {
    install_packages
    step "prepare ${BIN_DIR}"
    mkdir -p "${BIN_DIR}"

    local need_cp=0 need_writer=0
    have_binary "${BIN_DIR}/kube-apiserver" && have_binary "${BIN_DIR}/kube-controller-manager" || need_cp=1
    if [[ "$(cat "${BIN_DIR}/control-plane.fixes" 2>/dev/null)" != "${FIXES}" ]]; then
        need_cp=1
    fi
    writer_is_current || need_writer=1

    if ((need_cp || need_writer)); then
        fetch_source
    fi
    if ((need_cp || need_writer)); then
        fix_reflect2
    fi
    if ((need_cp)); then
        # Binaries from before the current fixes: rebuild them (Go's build
        # cache in _output keeps this to the packages that changed).
        if [[ -f "${TREE}/_output/bin/kube-apiserver" && "$(cat "${BIN_DIR}/control-plane.fixes" 2>/dev/null)" != "${FIXES}" ]]; then
            rm -f "${TREE}/_output/bin/kube-apiserver" "${TREE}/_output/bin/kube-controller-manager"
            (cd "${TREE}" && make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") \
                || die "rebuilding kube-apiserver and kube-controller-manager failed; see the output above"
        fi
        build_control_plane
    fi
    if ((need_writer)); then
        build_writer
    fi
    link_etcd

    STEP="done"
    say "binaries in ${BIN_DIR} (took $((SECONDS - START_SECONDS)) s)"
}

main "$@"
