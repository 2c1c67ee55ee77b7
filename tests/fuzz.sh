#!/usr/bin/env bash
# Builds one libFuzzer target the way cargo-fuzz would (the nightly
# toolchain with SanitizerCoverage; cargo-fuzz itself is not needed) and
# runs it for SECONDS (default 300) from an empty scratch directory, on a
# corpus kept under target/fuzz/corpus/TARGET and seeded from the repository.
#
# Usage: tests/fuzz.sh TARGET [SECONDS]
#   TARGET: ebpf_diff, ebpf_bytes, packet_extract (datapath/fuzz),
#           switch_yaml, ctl_request, pipeline_frames (controller/fuzz)
# FUZZ_DIR overrides target/fuzz. A crash leaves its input in the scratch
# directory's path printed by libFuzzer, and the script exits non-zero.
set -euo pipefail

target=${1:?usage: tests/fuzz.sh TARGET [SECONDS]}
secs=${2:-300}
repo=$(cd "$(dirname "$0")/.." && pwd)
case "$target" in
ebpf_diff | ebpf_bytes | packet_extract) crate=datapath/fuzz ;;
switch_yaml | ctl_request | pipeline_frames) crate=controller/fuzz ;;
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
pipeline_frames)
    # example.yaml: an IPv4 TCP frame to port 80 from port 1, then an ARP
    # request from port 2.
    printf '\x00\x00\x36\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00\x45\x00\x00\x28\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02\x30\x39\x00\x50\x00\x00\x00\x00\x00\x00\x00\x00\x50\x02\x20\x00\x00\x00\x00\x00' >"$corpus/seed-tcp"
    printf '\x00\x01\x2a\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x02\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01\x02\x00\x00\x00\x00\x02\x0a\x00\x00\x02\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x01' >"$corpus/seed-arp"
    ;;
esac

# Relative paths in fuzzed files (custom programs, flows files) resolve in
# an empty directory, which also takes the targets' temporary files.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
export TMPDIR="$scratch"
"$CARGO_TARGET_DIR/$triple/release/$target" "$corpus" -max_total_time="$secs" -print_final_stats=1
