#!/usr/bin/env bash
# iperf3 TCP throughput between two network namespaces, through:
#   1. flowswitch with L2-learning flows (two offload TAP ports);
#   2. flowswitch with a 10,000-flow ACL table in front of the same flows;
#   3. the Linux kernel bridge over veth;
#   4. Open vSwitch's userspace datapath with TAP ports and
#      userspace-tso-enable=true, when ovs-vswitchd is installed (its own
#      ovsdb-server and ovs-vswitchd in a temporary directory).
# Each path: 1 stream and 4 streams, SECONDS (default 10) each. Prints a
# table of Gbit/s and the ratios of flowswitch to OVS and to the bridge.
# With ROUNDS > 1 the four paths run ROUNDS times, one after the other in
# each round (so the machine's load drifts over all of them alike); the
# table gives each cell's median and range, and the ratios are the median
# (and range) of each round's own ratio.
#
# Usage (as root): bench/throughput.sh [SECONDS] [ROUNDS]
# FLOWSWITCH=path/to/flowswitch overrides the binary (default: a release
# build of this checkout). Only namespaces it makes are touched; they are
# removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
ROUNDS=${2:-1}
ROUND=1
TAG="fsb$$"
TAG=${TAG:0:9}
NS1="${TAG}n1"
NS2="${TAG}n2"
NSB="${TAG}nb"
WORK=$(mktemp -d)
FS_PID=""
OVS=""

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for t in ip iperf3; do
    command -v "$t" >/dev/null || { echo "needs $t (apt-get install -y iproute2 iperf3)" >&2; exit 1; }
done

if [ -z "${FLOWSWITCH:-}" ]; then
    cargo build --release -q -p controller
    FLOWSWITCH="${CARGO_TARGET_DIR:-target}/release/flowswitch"
fi

cleanup_ns() {
    for ns in "$NS1" "$NS2" "$NSB"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

stop_flowswitch() {
    if [ -n "$FS_PID" ]; then
        kill -TERM "$FS_PID" 2>/dev/null || true
        wait "$FS_PID" 2>/dev/null || true
        FS_PID=""
    fi
}

stop_ovs() {
    if [ -n "$OVS" ]; then
        ovs-appctl -t "$WORK/ovs-vswitchd.ctl" exit 2>/dev/null || true
        ovs-appctl -t "$WORK/ovsdb-server.ctl" exit 2>/dev/null || true
        OVS=""
    fi
}

cleanup() {
    stop_flowswitch
    stop_ovs
    cleanup_ns
    rm -rf "$WORK"
}
trap cleanup EXIT

make_hosts() {
    cleanup_ns
    ip netns add "$NS1"
    ip netns add "$NS2"
    ip -n "$NS1" link set lo up
    ip -n "$NS2" link set lo up
}

# attach DEV NS IP: moves DEV into NS with address IP/24, up.
attach() {
    ip link set dev "$1" netns "$2"
    ip -n "$2" addr add "$3/24" dev "$1"
    ip -n "$2" link set dev "$1" up
}

wait_dev() {
    for _ in $(seq 100); do
        [ -e "/sys/class/net/$1" ] && return 0
        sleep 0.05
    done
    echo "device $1 did not appear" >&2
    return 1
}

# iperf STREAMS: Gbit/s received, client in NS1, server in NS2 (10.99.0.2).
iperf() {
    ip netns exec "$NS2" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local srv=$!
    sleep 0.3
    local out
    out=$(ip netns exec "$NS1" iperf3 -c 10.99.0.2 -p 5201 -t "$SECS" -P "$1" -f g 2>&1) || {
        echo "iperf3 failed: $out" >&2
        kill "$srv" 2>/dev/null || true
        echo "0"
        return
    }
    wait "$srv" 2>/dev/null || true
    echo "$out" | awk '/receiver/ {v=$(NF-2)} END {print v}'
}

measure() { # NAME: runs 1 and 4 streams, appends to the results
    ip netns exec "$NS1" ping -c 2 -W 2 10.99.0.2 >/dev/null || { echo "$1: no connectivity" >&2; }
    local one four
    one=$(iperf 1)
    four=$(iperf 4)
    printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$one" "$four" >>"$WORK/results"
    printf '%-34s %8s %8s Gbit/s\n' "$1" "$one" "$four" >&2
}

switch_file() { # ACL_FLOWS: a switch file with two offload ports
    local acl=$1
    {
        echo "switch: {name: bench, threads: 2, miss: drop}"
        echo "ports:"
        echo "  - {id: 1, name: ${TAG}f1}"
        echo "  - {id: 2, name: ${TAG}f2}"
        echo "tables:"
        if [ "$acl" -gt 0 ]; then
            echo "  - id: 0"
            echo "    flows:"
            # ACL entries that the benchmark's traffic never matches: drop
            # 10.200.x.y -> 10.99.0.2 port 5201 and 10.99.0.1 to ports
            # 10000+i.
            for i in $(seq 0 $((acl - 2))); do
                if [ $((i % 2)) = 0 ]; then
                    echo "      - {name: a$i, priority: 100, match: {eth_type: ipv4, ip_proto: tcp, ipv4_src: 10.200.$((i / 250 % 250)).$((i % 250 + 1)), tcp_dst: 5201}, actions: [drop]}"
                else
                    echo "      - {name: a$i, priority: 100, match: {eth_type: ipv4, ip_proto: tcp, ipv4_src: 10.99.0.1, tcp_dst: $((10000 + i))}, actions: [drop]}"
                fi
            done
            echo "      - {name: pass, priority: 0, actions: [{goto_table: 1}]}"
            echo "  - id: 1"
        else
            echo "  - id: 0"
        fi
        echo "    flows:"
        echo "      - {name: learn, priority: 0, actions: [normal]}"
    } >"$WORK/switch.yaml"
}

run_flowswitch() { # NAME ACL_FLOWS
    make_hosts
    switch_file "$2"
    "$FLOWSWITCH" run "$WORK/switch.yaml" >"$WORK/flowswitch.log" 2>&1 &
    FS_PID=$!
    wait_dev "${TAG}f1"
    wait_dev "${TAG}f2"
    attach "${TAG}f1" "$NS1" 10.99.0.1
    attach "${TAG}f2" "$NS2" 10.99.0.2
    measure "$1"
    stop_flowswitch
}

run_bridge() {
    make_hosts
    ip netns add "$NSB"
    ip -n "$NSB" link add br0 type bridge
    ip -n "$NSB" link set br0 up
    for i in 1 2; do
        local ns="$NS1"
        [ $i = 2 ] && ns="$NS2"
        ip -n "$NSB" link add "v$i" type veth peer name "h$i"
        ip -n "$NSB" link set "v$i" master br0
        ip -n "$NSB" link set "v$i" up
        ip -n "$NSB" link set "h$i" netns "$ns"
        ip -n "$ns" addr add "10.99.0.$i/24" dev "h$i"
        ip -n "$ns" link set "h$i" up
    done
    measure "kernel bridge (veth)"
}

run_ovs() {
    command -v ovs-vswitchd >/dev/null || { echo "ovs-vswitchd not installed: OVS skipped" >&2; return; }
    make_hosts
    local schema=/usr/share/openvswitch/vswitch.ovsschema
    local db="unix:$WORK/db.sock"
    rm -f "$WORK/conf.db" "$WORK"/*.pid "$WORK"/*.ctl "$WORK/db.sock"
    ovsdb-tool create "$WORK/conf.db" "$schema"
    ovsdb-server "$WORK/conf.db" --remote="punix:$WORK/db.sock" --pidfile="$WORK/ovsdb.pid" \
        --unixctl="$WORK/ovsdb-server.ctl" --log-file="$WORK/ovsdb.log" --detach 2>/dev/null
    OVS=1
    ovs-vsctl --db="$db" --no-wait init
    ovs-vsctl --db="$db" --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
    OVS_RUNDIR="$WORK" ovs-vswitchd "$db" --pidfile="$WORK/vswitchd.pid" \
        --unixctl="$WORK/ovs-vswitchd.ctl" --log-file="$WORK/vswitchd.log" --detach 2>/dev/null
    ovs-vsctl --db="$db" add-br "${TAG}br" -- set bridge "${TAG}br" datapath_type=netdev
    ovs-vsctl --db="$db" add-port "${TAG}br" "${TAG}o1" -- set Interface "${TAG}o1" type=tap
    ovs-vsctl --db="$db" add-port "${TAG}br" "${TAG}o2" -- set Interface "${TAG}o2" type=tap
    wait_dev "${TAG}o1"
    wait_dev "${TAG}o2"
    attach "${TAG}o1" "$NS1" 10.99.0.1
    attach "${TAG}o2" "$NS2" 10.99.0.2
    measure "OVS userspace (TAP, TSO)"
    ovs-vsctl --db="$db" del-br "${TAG}br" || true
    stop_ovs
}

: >"$WORK/results"
echo "iperf3 TCP, ${SECS} s per run, 1 and 4 streams (Gbit/s), ${ROUNDS} round(s):" >&2
for ROUND in $(seq "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && echo "round $ROUND:" >&2
    run_flowswitch "flowswitch L2 learning" 0
    run_flowswitch "flowswitch 10k-flow ACL + L2" 10000
    run_bridge
    run_ovs
done
cleanup_ns

# summary VALUES...: the median, and "(min-max)" when there are several.
summary() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { printf "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            if (NR == 1) printf "%.3g", m
            else printf "%.3g (%.3g-%.3g)", m, v[1], v[NR]
        }'
}
column() { # NAME COL: that path's values in column COL, one per round
    awk -F'\t' -v name="$1" -v col="$2" '$2 == name { print $col }' "$WORK/results"
}
ratios() { # ROW COL: each round's flowswitch ACL / ROW in column COL
    awk -F'\t' -v row="$1" -v col="$2" '
        $2 == "flowswitch 10k-flow ACL + L2" { a[$1] = $col }
        $2 == row { b[$1] = $col }
        END { for (r in a) if (a[r] > 0 && b[r] > 0) printf "%.2f\n", a[r] / b[r] }' "$WORK/results"
}
echo
printf '| path | 1 stream | 4 streams |\n|---|---|---|\n'
for name in "flowswitch L2 learning" "flowswitch 10k-flow ACL + L2" "kernel bridge (veth)" "OVS userspace (TAP, TSO)"; do
    [ -n "$(column "$name" 3)" ] || continue
    # shellcheck disable=SC2046
    printf '| %s | %s | %s |\n' "$name" "$(summary $(column "$name" 3))" "$(summary $(column "$name" 4))"
done
ratio() { # ROW COL
    # shellcheck disable=SC2046
    printf '%sx' "$(summary $(ratios "$1" "$2"))"
}
echo
echo "flowswitch (10k ACL) / OVS userspace: 1 stream $(ratio 'OVS userspace (TAP, TSO)' 3), 4 streams $(ratio 'OVS userspace (TAP, TSO)' 4)"
echo "flowswitch (10k ACL) / kernel bridge: 1 stream $(ratio 'kernel bridge (veth)' 3), 4 streams $(ratio 'kernel bridge (veth)' 4)"
