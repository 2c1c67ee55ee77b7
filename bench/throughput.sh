#!/usr/bin/env bash
# bench/throughput.sh: iperf3 TCP between two network namespaces, with 1 and
# with 4 streams, through each of these paths, in one run:
#   - flowswitch with L2-learning flows (TAP ports with offloads);
#   - flowswitch with a 10,000-flow ACL table in front of the same flows;
#   - the Linux kernel bridge over veth (the bridge in a namespace of its own);
#   - Open vSwitch's userspace datapath (datapath_type=netdev) with TAP ports
#     and userspace-tso-enable=true, when ovs-vswitchd is installed. The
#     script runs its own ovsdb-server and ovs-vswitchd from a temporary
#     directory and stops them afterwards.
# It prints a table of Gbit/s (receiver side) and the ratios to OVS and to the
# kernel bridge.
#
# Needs root, iproute2, iperf3, python3 (to read iperf3's JSON), and a release
# build (`cargo build --release`; FLOWSWITCH=path overrides the binary).
# Everything it creates carries the tag fsb<pid>: namespaces, TAPs, veths,
# the OVS bridge. Nothing else is touched; all of it is removed on exit.
#
# Usage: bench/throughput.sh [SECONDS] (default 10 per measurement)
#        PATHS="fs acl bridge ovs" STREAMS="1 4" bench/throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
paths=${PATHS:-"fs acl bridge ovs"}
streams=${STREAMS:-"1 4"}
fs=${FLOWSWITCH:-target/release/flowswitch}
tag=fsb$$
tag=${tag:0:9}
tmp=$(mktemp -d "/tmp/${tag}.XXXX")
ns_a=${tag}a
ns_b=${tag}b
ns_br=${tag}br
pids=()
ovs_up=0

die() { echo "throughput.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, TAP devices)"
for t in ip iperf3 python3; do command -v $t >/dev/null || die "needs $t"; done
[ -x "$fs" ] || die "no $fs: run cargo build --release first"

ovsctl() { ovs-vsctl --db="unix:$tmp/ovs/db.sock" --timeout=10 "$@"; }

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ $ovs_up = 1 ] && stop_ovs
    [ -e "/sys/class/net/${tag}o" ] && ip link delete "${tag}o"
    for n in "$ns_a" "$ns_b" "$ns_br"; do
        [ -e "/run/netns/$n" ] && ip netns delete "$n"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_hosts() {
    for n in "$ns_a" "$ns_b"; do
        [ -e "/run/netns/$n" ] && ip netns delete "$n"
        ip netns add "$n"
        ip -n "$n" link set lo up
    done
}

# attach DEV NS ADDR MAC: moves DEV into NS and configures it.
attach() {
    ip link set dev "$1" netns "$2"
    ip -n "$2" link set dev "$1" address "$4"
    ip -n "$2" addr add "$3/24" dev "$1"
    ip -n "$2" link set dev "$1" up
}

wait_link() {
    for _ in $(seq 100); do
        [ -e "/sys/class/net/$1" ] && return 0
        sleep 0.1
    done
    die "interface $1 did not appear"
}

# gbps STREAMS: iperf3 from a (10.77.0.1) to b (10.77.0.2); prints Gbit/s.
gbps() {
    ip netns exec "$ns_a" ping -c 1 -W 2 10.77.0.2 >/dev/null 2>&1 || true
    ip netns exec "$ns_b" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local server=$!
    local out=""
    for _ in $(seq 30); do
        out=$(ip netns exec "$ns_a" iperf3 -c 10.77.0.2 -p 5201 -t "$secs" -P "$1" -J 2>/dev/null || true)
        case "$out" in *'"sum_received"'*) break ;; esac
        sleep 0.2
    done
    wait "$server" 2>/dev/null || true
    python3 -c '
import json, sys
try:
    print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    print("fail")' <<<"$out"
}

measure() { # NAME: one row of results
    local row="$1"
    for s in $streams; do row+=" $(gbps "$s")"; done
    results+=("$row")
    echo "  $row" >&2
}

l2_flows() {
    cat <<EOF
  - id: $1
    flows:
      - {name: learn, priority: 0, actions: [normal]}
EOF
}

switch_file() { # FILE WITH_ACL
    {
        cat <<EOF
switch: {name: $tag, threads: 2, miss: drop}
ports:
  - {id: 1, name: ${tag}p1}
  - {id: 2, name: ${tag}p2}
tables:
EOF
        if [ "$2" = 1 ]; then
            # 10,000 drops that the iperf traffic never matches, over two
            # masks (exact source + TCP port; /24 destination + UDP port),
            # then on to the learning table.
            echo "  - id: 0"
            echo "    flows:"
            for i in $(seq 0 4999); do
                echo "      - {name: ssh$i, priority: 100, match: {ipv4_src: 172.16.$((i / 256)).$((i % 256)), tcp_dst: 22}, actions: [drop]}"
                echo "      - {name: dns$i, priority: 100, match: {ipv4_dst: 10.$((100 + i / 256)).$((i % 256)).0/24, udp_dst: 53}, actions: [drop]}"
            done
            echo "      - {name: rest, priority: 0, actions: [{goto_table: 1}]}"
            l2_flows 1
        else
            l2_flows 0
        fi
    } >"$1"
}

run_flowswitch() { # NAME WITH_ACL
    fresh_hosts
    local file="$tmp/switch-$2.yaml"
    switch_file "$file" "$2"
    "$fs" run "$file" >"$tmp/run-$2.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_link "${tag}p1"
    wait_link "${tag}p2"
    attach "${tag}p1" "$ns_a" 10.77.0.1 02:00:00:77:00:01
    attach "${tag}p2" "$ns_b" 10.77.0.2 02:00:00:77:00:02
    measure "$1"
    kill -INT "$pid"
    wait "$pid" || die "flowswitch run exited with $?: $(tail -5 "$tmp/run-$2.log")"
    pids=("${pids[@]/$pid/}")
}

run_bridge() {
    fresh_hosts
    ip netns add "$ns_br"
    ip -n "$ns_br" link add br0 type bridge
    ip -n "$ns_br" link set br0 up
    for h in a b; do
        local ns=${tag}$h
        ip link add "${tag}v$h" type veth peer name "${tag}w$h"
        ip link set "${tag}w$h" netns "$ns_br"
        ip -n "$ns_br" link set "${tag}w$h" master br0 up
    done
    attach "${tag}va" "$ns_a" 10.77.0.1 02:00:00:77:00:01
    attach "${tag}vb" "$ns_b" 10.77.0.2 02:00:00:77:00:02
    measure "kernel bridge (veth)"
    ip netns delete "$ns_br"
}

run_ovs() {
    if ! command -v ovs-vswitchd >/dev/null; then
        echo "  (ovs-vswitchd not installed: OVS row skipped)" >&2
        return
    fi
    fresh_hosts
    local schema=/usr/share/openvswitch/vswitch.ovsschema
    mkdir -p "$tmp/ovs"
    export OVS_RUNDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs"
    ovsdb-tool create "$tmp/ovs/conf.db" "$schema"
    ovsdb-server "$tmp/ovs/conf.db" --remote="punix:$tmp/ovs/db.sock" \
        --unixctl="$tmp/ovs/ovsdb.ctl" --pidfile="$tmp/ovs/ovsdb.pid" \
        --log-file="$tmp/ovs/ovsdb.log" --detach --no-chdir 2>>"$tmp/ovs/stderr"
    ovs_up=1
    ovsctl --no-wait init
    ovsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
    ovs-vswitchd "unix:$tmp/ovs/db.sock" --unixctl="$tmp/ovs/vswitchd.ctl" \
        --pidfile="$tmp/ovs/vswitchd.pid" --log-file="$tmp/ovs/vswitchd.log" \
        --detach --no-chdir 2>>"$tmp/ovs/stderr"
    ovsctl add-br "${tag}o" -- set bridge "${tag}o" datapath_type=netdev
    ovsctl add-port "${tag}o" "${tag}o1" -- set Interface "${tag}o1" type=tap
    ovsctl add-port "${tag}o" "${tag}o2" -- set Interface "${tag}o2" type=tap
    wait_link "${tag}o1"
    wait_link "${tag}o2"
    attach "${tag}o1" "$ns_a" 10.77.0.1 02:00:00:77:00:01
    attach "${tag}o2" "$ns_b" 10.77.0.2 02:00:00:77:00:02
    measure "OVS userspace (TAP, TSO)"
    stop_ovs
}

stop_ovs() {
    # The bridge's own (internal) TAP outlives ovs-vswitchd: delete it.
    ovsctl --if-exists del-br "${tag}o" 2>/dev/null
    ovs-appctl -t "$tmp/ovs/vswitchd.ctl" exit 2>/dev/null
    ovs-appctl -t "$tmp/ovs/ovsdb.ctl" exit 2>/dev/null
    ovs_up=0
}

results=()
echo "iperf3 TCP a -> b, $secs s per run, streams: $streams" >&2
for p in $paths; do
    case $p in
        fs) run_flowswitch "flowswitch (L2 learning)" 0 ;;
        acl) run_flowswitch "flowswitch (10k ACL + L2)" 1 ;;
        bridge) run_bridge ;;
        ovs) run_ovs ;;
        *) die "unknown path $p (fs, acl, bridge, ovs)" ;;
    esac
done

# The table: Gbit/s per stream count, and each row over OVS and the bridge.
python3 - "$streams" "${results[@]}" <<'EOF'
import sys
streams = sys.argv[1].split()
rows = []
for r in sys.argv[2:]:
    parts = r.rsplit(" ", len(streams))
    rows.append((parts[0], parts[1:]))
def num(v):
    try:
        return float(v)
    except ValueError:
        return None
ref = {name: vals for name, vals in rows}
ovs = next((v for n, v in rows if n.startswith("OVS")), None)
br = next((v for n, v in rows if n.startswith("kernel bridge")), None)
head = "| path | " + " | ".join(f"{s} stream{'s' if s != '1' else ''} Gbit/s" for s in streams)
head += " | " + " | ".join(f"vs OVS ({s})" for s in streams) if ovs else ""
head += " | " + " | ".join(f"vs bridge ({s})" for s in streams) if br else ""
print(head + " |")
print("|" + "---|" * (head.count("|")))
for name, vals in rows:
    cells = [name] + vals
    for base in (ovs, br):
        if base is None:
            continue
        for v, b in zip(vals, base):
            x, y = num(v), num(b)
            cells.append(f"{x / y:.2f}x" if x is not None and y else "-")
    print("| " + " | ".join(cells) + " |")
EOF
