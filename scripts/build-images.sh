#!/usr/bin/env bash
# Build rekindle's container images without a container engine: each image is an OCI
# image layout under target/images/<name> (or $CARGO_TARGET_DIR/images/<name>), tagged
# with the binary's version. Push one with skopeo, for example:
#   skopeo copy oci:target/images/rekindle-operator:0.1.0 docker://REGISTRY/rekindle-operator:0.1.0
#
# usage: scripts/build-images.sh [--no-build] [IMAGE...]
#   IMAGE       rekindle, rekindle-operator (default: both)
#   --no-build  use the dist binaries already built instead of running cargo
#
# Each image is described by images/<name>/Dockerfile, which `docker build` also reads
# (see the file). This script reads the same file, so the two builds cannot drift: it
# accepts only what a one-binary image needs (FROM scratch, ARG, one LABEL per line,
# COPY of one file to the root, USER, a one-element ENTRYPOINT) and refuses anything
# else. It uses Debian's umoci, with no privileges and no daemon: `init` and `new` make
# an empty image, the binary goes in as one layer with `raw add-layer` (a tar with
# exactly that one entry, owned by 0:0, mode 0755, dated like the commit; `unpack` and
# `repack` would also record the root directory and the unpacking user's ownership),
# and `config` sets the user, entrypoint and labels. Given the same binary and commit,
# the result is the same, byte for byte. umoci and skopeo are installed with apt when
# missing.
set -Eeuo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly RUST_TARGET=x86_64-unknown-linux-musl
readonly ALL_IMAGES=(rekindle rekindle-operator)

say() { printf 'build-images: %s\n' "$*" >&2; }
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

# The crate whose binary each image holds.
crate_of() {
    case "$1" in
        rekindle) echo rekindle-cli ;;
        rekindle-operator) echo rekindle-operator ;;
        *) die "unknown image '$1' (known: ${ALL_IMAGES[*]})" ;;
    esac
}

install_tools() {
    # The images hold static musl binaries; rustup adds the target's standard library
    # (a download of about 40 MB) when this toolchain does not have it yet.
    if ! rustup target list --installed 2>/dev/null | grep -qx "${RUST_TARGET}"; then
        say "adding the Rust target ${RUST_TARGET} with rustup"
        rustup target add "${RUST_TARGET}" || die "rustup target add ${RUST_TARGET} failed"
    fi
    local missing=() tool
    for tool in umoci skopeo; do
        command -v "${tool}" >/dev/null || missing+=("${tool}")
    done
    # ring (TLS for the kube client) builds C code for the target: musl's gcc wrapper.
    command -v musl-gcc >/dev/null || missing+=(musl-tools)
    ((${#missing[@]} == 0)) && return
    say "installing with apt: ${missing[*]}"
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
}

# --- the Dockerfile subset ----------------------------------------------------------

# --build-arg values for parse_dockerfile.
declare -A BUILD_ARGS=()
# Filled by parse_dockerfile.
declare -A ARGS=()
LABELS=()
COPY_SRC=""
COPY_DST=""
USER_SPEC=""
ENTRYPOINT=""

# Replaces ${NAME} and $NAME of declared ARGs in $1.
expand() {
    local text="$1" name
    for name in "${!ARGS[@]}"; do
        text="${text//\$\{${name}\}/${ARGS[${name}]}}"
        text="${text//\$${name}/${ARGS[${name}]}}"
    done
    [[ "${text}" == *'$'* ]] && die "undeclared variable in: $1"
    printf '%s' "${text}"
}

# parse_dockerfile FILE: reads the instructions; build arguments given in the
# associative array BUILD_ARGS win over the ARG defaults, as with --build-arg.
parse_dockerfile() {
    local file="$1" line number=0 from="" name value
    ARGS=()
    LABELS=()
    COPY_SRC="" COPY_DST="" USER_SPEC="" ENTRYPOINT=""
    while IFS= read -r line || [[ -n "${line}" ]]; do
        number=$((number + 1))
        [[ "${line}" =~ ^[[:space:]]*(#.*)?$ ]] && continue
        local where="${file}:${number}"
        [[ "${line}" == *\\ ]] && die "${where}: line continuations are not supported"
        if [[ "${line}" =~ ^FROM[[:space:]]+(.+)$ ]]; then
            [[ "${BASH_REMATCH[1]}" == scratch ]] || die "${where}: only FROM scratch is supported"
            from=scratch
        elif [[ -z "${from}" ]]; then
            die "${where}: the first instruction must be FROM scratch"
        elif [[ "${line}" =~ ^ARG[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)(=(.*))?$ ]]; then
            name="${BASH_REMATCH[1]}"
            value="${BASH_REMATCH[3]}"
            ARGS[${name}]="${BUILD_ARGS[${name}]-${value}}"
        elif [[ "${line}" =~ ^LABEL[[:space:]]+([A-Za-z0-9._-]+)=\"([^\"]*)\"$ ]]; then
            LABELS+=("${BASH_REMATCH[1]}=$(expand "${BASH_REMATCH[2]}")")
        elif [[ "${line}" =~ ^COPY[[:space:]]+([^[:space:]-][^[:space:]]*)[[:space:]]+(/[A-Za-z0-9._-]+)$ ]]; then
            [[ -z "${COPY_SRC}" ]] || die "${where}: one COPY only (the image is one binary)"
            COPY_SRC="${BASH_REMATCH[1]}"
            COPY_DST="${BASH_REMATCH[2]}"
        elif [[ "${line}" =~ ^USER[[:space:]]+([0-9]+:[0-9]+)$ ]]; then
            USER_SPEC="${BASH_REMATCH[1]}"
        elif [[ "${line}" =~ ^ENTRYPOINT[[:space:]]+\[\"([^\"]+)\"\]$ ]]; then
            ENTRYPOINT="${BASH_REMATCH[1]}"
        else
            die "${where}: not supported by this script: ${line}"
        fi
    done <"${file}"
    [[ -n "${COPY_SRC}" ]] || die "${file}: no COPY"
    [[ -n "${USER_SPEC}" ]] || die "${file}: no numeric USER uid:gid"
    [[ -n "${ENTRYPOINT}" ]] || die "${file}: no ENTRYPOINT"
}

# --- building -------------------------------------------------------------------------

build_image() {
    local image="$1"
    local dockerfile="${REPO_ROOT}/images/${image}/Dockerfile"
    [[ -f "${dockerfile}" ]] || die "${dockerfile} is missing"

    # The COPY source is relative to the build context (the repository root); its
    # target/ is wherever cargo put its output.
    local binary
    BUILD_ARGS=()
    parse_dockerfile "${dockerfile}"
    case "${COPY_SRC}" in
        target/*) binary="${TARGET_DIR}/${COPY_SRC#target/}" ;;
        *) binary="${REPO_ROOT}/${COPY_SRC}" ;;
    esac
    [[ -x "${binary}" ]] || die "${binary} is missing: build it with cargo build --profile dist --target ${RUST_TARGET} -p $(crate_of "${image}") (or drop --no-build)"

    local version
    version="$(env -i "${binary}" --version | awk '{ print $2 }')"
    [[ -n "${version}" ]] || die "${binary} --version printed no version"
    BUILD_ARGS=([VERSION]="${version}" [REVISION]="${REVISION}" [CREATED]="${CREATED}")
    parse_dockerfile "${dockerfile}"

    local layout="${IMAGES_DIR}/${image}"
    local ref="${layout}:${version}"
    local work
    work="$(mktemp -d)"
    rm -rf "${layout}"
    umoci init --layout "${layout}"
    umoci new --image "${ref}"

    # The layer: exactly one entry, the binary, as COPY would make it (owned by 0:0).
    mkdir "${work}/rootfs"
    cp "${binary}" "${work}/rootfs/${COPY_DST#/}"
    tar --create --format=ustar --owner=0 --group=0 --numeric-owner \
        --mtime="@${EPOCH}" --mode=0755 \
        --file="${work}/layer.tar" --directory="${work}/rootfs" "${COPY_DST#/}"
    umoci raw add-layer --image "${ref}" \
        --history.created "${CREATED}" \
        --history.created_by "COPY ${COPY_SRC} ${COPY_DST}" \
        "${work}/layer.tar"

    local config_args=(
        --no-history
        --created "${CREATED}"
        --architecture amd64 --os linux
        --config.user "${USER_SPEC}"
        --config.entrypoint "${ENTRYPOINT}"
    )
    local label
    for label in "${LABELS[@]}"; do
        config_args+=(--config.label "${label}" --manifest.annotation "${label}")
    done
    umoci config --image "${ref}" "${config_args[@]}"
    umoci gc --layout "${layout}"
    rm -rf "${work}"

    skopeo inspect "oci:${ref}" >/dev/null || die "skopeo cannot read ${ref}"
    local binary_bytes layer_bytes total_bytes
    binary_bytes="$(stat -c %s "${binary}")"
    layer_bytes="$(skopeo inspect --raw "oci:${ref}" | grep -o '"size":[0-9]*' | tail -n 1 | cut -d: -f2)"
    total_bytes="$(du -sb --apparent-size "${layout}" | cut -f1)"
    printf '%-18s %-8s binary %9s B  layer (gzip) %9s B  layout %9s B  %s\n' \
        "${image}" "${version}" "${binary_bytes}" "${layer_bytes}" "${total_bytes}" "${ref}"
}

# --- main -------------------------------------------------------------------------------

main() {
    local build=1 images=()
    while (($#)); do
        case "$1" in
            --no-build) build=0 ;;
            -h | --help)
                sed -n '2,/^set -E/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
                exit 0
                ;;
            -*) die "unknown option $1" ;;
            *)
                crate_of "$1" >/dev/null
                images+=("$1")
                ;;
        esac
        shift
    done
    ((${#images[@]})) || images=("${ALL_IMAGES[@]}")

    cd "${REPO_ROOT}"
    install_tools
    TARGET_DIR="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
    [[ "${TARGET_DIR}" == /* ]] || TARGET_DIR="${REPO_ROOT}/${TARGET_DIR}"
    IMAGES_DIR="${TARGET_DIR}/images"
    mkdir -p "${IMAGES_DIR}"

    REVISION="$(git -C "${REPO_ROOT}" rev-parse HEAD 2>/dev/null || echo unknown)"
    EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "${REPO_ROOT}" log -1 --format=%ct 2>/dev/null || echo 0)}"
    CREATED="$(date -u -d "@${EPOCH}" +%Y-%m-%dT%H:%M:%SZ)"

    if ((build)); then
        local crates=() image start=${SECONDS}
        for image in "${images[@]}"; do
            crates+=(-p "$(crate_of "${image}")")
        done
        say "cargo build --profile dist --target ${RUST_TARGET} ${crates[*]}"
        # cc-rs looks for `x86_64-linux-musl-gcc`; Debian's musl-tools names it musl-gcc.
        CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
            cargo build --profile dist --target "${RUST_TARGET}" "${crates[@]}"
        say "dist build took $((SECONDS - start)) s"
    fi

    for image in "${images[@]}"; do
        build_image "${image}"
    done
}

main "$@"
