#!/usr/bin/env bash
# Builds one libFuzzer target the way cargo-fuzz would (the nightly
# toolchain with SanitizerCoverage; cargo-fuzz itself is not needed) and
# runs it for SECONDS (default 300) from an empty scratch directory, on a
# corpus kept under target/fuzz/corpus/TARGET and seeded from the repository.
#
# Usage: tests/fuzz.sh TARGET [SECONDS]
#   TARGET: ebpf_diff, ebpf_bytes, packet_extract (datapath/fuzz),
#           switch_yaml, ctl_request (controller/fuzz)
# FUZZ_DIR overrides target/fuzz. A crash leaves its input in the scratch
# directory's path printed by libFuzzer, and the script exits non-zero.
set -euo pipefail

target=${1:?usage: tests/fuzz.sh TARGET [SECONDS]}
secs=${2:-300}
repo=$(cd "$(dirname "$0")/.." && pwd)
case "$target" in
ebpf_diff | ebpf_bytes | packet_extract) crate=datapath/fuzz ;;
switch_yaml | ctl_request) crate=controller/fuzz ;;
*)
    echo "tests/fuzz.sh: unknown target $target" >&2
    exit 2
    ;;
esac

out=${FUZZ_DIR:-$repo/target/fuzz}
triple=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="$out/build"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --manifest-path "$repo/$crate/Cargo.toml" --release \
    --bin "$target" --target "$triple"

corpus="$out/corpus/$target"
mkdir -p "$corpus"
case "$target" in
switch_yaml)
    for f in "$repo"/flows/*.yaml "$repo"/topologies/*.yaml; do
        cp "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    ;;
ctl_request)
    i=0
    for r in '{"cmd":"dump-flows"}' '{"cmd":"dump-ports"}' '{"cmd":"stats"}' '{"cmd":"reload"}' \
        '{"cmd":"add-flow","table":0,"flow":"{name: x, priority: 5, match: {tcp_dst: 22}, actions: [drop]}"}' \
        '{"cmd":"del-flows","name":"x"}' \
        '{"cmd":"trace","in_port":"1","frame":"ffffffffffff020000000001080045000014000000004001f9e90a0000010a000002"}'; do
        printf '%s' "$r" >"$corpus/seed-$i"
        i=$((i + 1))
    done
    ;;
esac

# Relative paths in fuzzed files (custom programs, flows files) resolve in
# an empty directory, which also takes the targets' temporary files.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
export TMPDIR="$scratch"
"$CARGO_TARGET_DIR/$triple/release/$target" "$corpus" -max_total_time="$secs" -print_final_stats=1
