#!/usr/bin/env bash
# Build the OpenTelemetry Collector used by the tests and the examples, once per
# machine, and print the absolute path of the binary on stdout (nothing else;
# progress goes to stderr).
#
# The sources are tests/collector/otelcol/: the Go package the official
# Collector builder (ocb, go.opentelemetry.io/collector/cmd/builder v0.161.0)
# generates from otelcol/builder-config.yaml. go.sum is committed and
# the build runs with -mod=readonly, so every machine builds the same modules.
#
# The binary lands outside the repository, in
#   ${AGENTSIGHT_OTEL_CACHE:-$HOME/.cache/agentsight-otel}/otelcol-v0.161.0-<hash>/otelcol
# where <hash> is the first 12 hex digits of the sha256 of go.mod, go.sum and
# the .go sources. Changing any of them builds a new binary next to the old
# one; an existing binary is reused as is.
#
# Needs: the Go toolchain (go.mod says go 1.26.0) and the Go module proxy.
# A cold build (empty Go module and build caches) took about 2 minutes on 2 cores.
set -euo pipefail

readonly OTELCOL_RELEASE="v0.161.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${here}/otelcol"
cache_root="${AGENTSIGHT_OTEL_CACHE:-${HOME}/.cache/agentsight-otel}"

log() { printf 'build.sh: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain ('go') is not on PATH; install Go >= 1.26 to build the Collector"
    exit 1
fi

# Hash the inputs in a fixed order, each preceded by its name, so moving
# content from one file to another also changes the hash.
hash="$(
    cd "${src}"
    for f in go.mod go.sum $(LC_ALL=C ls -- *.go); do
        printf '%s\n' "${f}"
        cat -- "${f}"
    done | sha256sum | cut -c1-12
)"

out_dir="${cache_root}/otelcol-${OTELCOL_RELEASE}-${hash}"
binary="${out_dir}/otelcol"

if [[ -x "${binary}" ]]; then
    log "using cached ${binary}"
    printf '%s\n' "${binary}"
    exit 0
fi

mkdir -p "${out_dir}"
# Build under a private name and rename, so a concurrent run (or an
# interrupted one) never leaves a half-written binary at the final path.
tmp="$(mktemp "${out_dir}/otelcol.tmp.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT

log "building OpenTelemetry Collector ${OTELCOL_RELEASE} into ${binary} ($(go version))"
start="${SECONDS}"
(
    cd "${src}"
    # -mod=readonly: go.mod/go.sum are the record of what gets built; fail
    # rather than silently resolving something else. -buildvcs=false: the
    # package sits inside this repository's git checkout, which must not
    # leak into (or break) the build.
    GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "${tmp}" . >&2
)
chmod 0755 "${tmp}"
mv -f "${tmp}" "${binary}"
trap - EXIT
log "built in $((SECONDS - start))s"

printf '%s\n' "${binary}"
