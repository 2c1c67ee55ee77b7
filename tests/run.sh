#!/usr/bin/env bash
# The test command: installs what the tests need (when run as root on a Debian
# machine), then runs the whole workspace's tests in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
# clang -target bpf: the ELF loader's and the C header's tests build C programs.
command -v clang >/dev/null 2>&1 || need+=(clang)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "note: missing ${need[*]}; tests that need them will skip (or fail under CI=true)"
    fi
fi

if [ -z "${BPF_CONFORMANCE_DIR:-}" ] && [ -d ../shared/bpf-conformance ]; then
    export BPF_CONFORMANCE_DIR="$(cd ../shared/bpf-conformance && pwd)"
fi

cargo test --workspace --release "$@"
