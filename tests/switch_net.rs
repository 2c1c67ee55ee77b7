//! End-to-end tests of the switch on TAP devices (`flowswitch run`'s
//! library, `controller::run::RunningSwitch`), between network namespaces
//! each test makes and removes.
//!
//! Each test: namespaces named `fsn<pid><tag><i>`, TAP ports made by the
//! switch and moved into them, addresses set with `ip`; traffic only
//! inside those namespaces. TCP transfers need no tool: a listener thread
//! enters one namespace (`setns`), a client thread the other, and the
//! receiver checks every byte. A [`Net`] guard deletes the namespaces on
//! every exit, failure included; the TAPs go when the switch stops.
//!
//! Without root, `/dev/net/tun`, `ip` or `ping` a test prints that it
//! skipped, and fails under `CI=true`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{
    ip, ping, prerequisites, receiver, send, signal, transfer, wait_for, ChildGuard, Net,
};
use controller::model;
use controller::run::{RunOptions, RunningSwitch};
use datapath::dp::port::Port;

/// A switch file with these ports `(id, name, offload)` and flows.
fn switch_yaml(ports: &[(u32, &str, bool)], miss: &str, tables: &str) -> String {
    let mut y = format!("switch:\n  name: t\n  threads: 2\n  miss: {miss}\nports:\n");
    for (id, name, offload) in ports {
        y += &format!("  - {{id: {id}, name: {name}, offload: {offload}}}\n");
    }
    y + tables
}

const LEARN: &str =
    "tables:\n  - id: 0\n    flows:\n      - {name: learn, priority: 0, actions: [normal]}\n";

fn start(yaml: &str, mtu: Option<u32>) -> RunningSwitch {
    let plan = model::switch_from_str(Path::new("switch_net.yaml"), yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    RunningSwitch::start(
        &plan,
        &RunOptions {
            mtu,
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Two namespaces, two offload ports with two queues each (one per
/// worker), L2 learning: ping and checked TCP transfers both ways, with
/// several connections at once so that both queues carry traffic.
#[test]
fn ping_and_tcp_between_two_namespaces() {
    if !prerequisites("ping_and_tcp_between_two_namespaces") {
        return;
    }
    let mut net = Net::new("a");
    let (t1, t2) = (net.ifname(1), net.ifname(2));
    let yaml = switch_yaml(&[(1, &t1, true), (2, &t2, true)], "normal", LEARN)
        .replace("offload: true}", "offload: true, queues: 2}");
    let sw = start(&yaml, None);
    assert_eq!(sw.tap(1).unwrap().queues(), 2);
    let (n1, n2) = (net.ns(1), net.ns(2));
    net.attach(&t1, &n1, "02:00:00:00:0a:01");
    net.attach(&t2, &n2, "02:00:00:00:0a:02");
    net.addr(&n1, &t1, "10.77.0.1/24");
    net.addr(&n2, &t2, "10.77.0.2/24");
    assert!(ping(&n1, "10.77.0.2", &[]), "ping through the switch");
    transfer(&n1, &n2, "10.77.0.2", 5001, 16 << 20);
    transfer(&n2, &n1, "10.77.0.1", 5002, 4 << 20);
    let parallel: Vec<_> = (0..4u16)
        .map(|i| {
            let (n1, n2) = (n1.clone(), n2.clone());
            std::thread::spawn(move || transfer(&n1, &n2, "10.77.0.2", 5100 + i, 2 << 20))
        })
        .collect();
    for t in parallel {
        t.join().expect("parallel transfer");
    }
    let snap = sw.snapshot();
    let p1 = snap.ports.iter().find(|p| p.id == 1).unwrap();
    // The 16 MiB went in as TSO super-frames: far fewer frames than
    // 1,500-byte packets would need.
    assert!(p1.total.rx_bytes > 16 << 20);
    assert!(
        p1.total.rx_packets < (16 << 20) / 1448,
        "{} frames for 16 MiB: no TSO?",
        p1.total.rx_packets
    );
    sw.stop();
}

/// 9000-byte MTU on plain ports (every frame up to 9,014 bytes, no
/// offload) and on offload ports.
#[test]
fn jumbo_frames() {
    if !prerequisites("jumbo_frames") {
        return;
    }
    for offload in [false, true] {
        let mut net = Net::new(if offload { "jo" } else { "jp" });
        let (t1, t2) = (net.ifname(1), net.ifname(2));
        let sw = start(
            &switch_yaml(&[(1, &t1, offload), (2, &t2, offload)], "normal", LEARN),
            Some(9000),
        );
        let (n1, n2) = (net.ns(1), net.ns(2));
        net.attach(&t1, &n1, "02:00:00:00:0b:01");
        net.attach(&t2, &n2, "02:00:00:00:0b:02");
        net.addr(&n1, &t1, "10.78.0.1/24");
        net.addr(&n2, &t2, "10.78.0.2/24");
        // 8972 bytes of ICMP payload + 28 = a 9000-byte datagram, not
        // fragmented.
        assert!(
            ping(&n1, "10.78.0.2", &["-s", "8972", "-M", "do"]),
            "jumbo ping, offload {offload}"
        );
        transfer(&n1, &n2, "10.78.0.2", 5003, 8 << 20);
        let snap = sw.snapshot();
        let p1 = snap.ports.iter().find(|p| p.id == 1).unwrap();
        assert!(
            p1.total.rx_packets < (8 << 20) / 1448,
            "offload {offload}: {} frames for 8 MiB: not jumbo",
            p1.total.rx_packets
        );
        sw.stop();
    }
}

/// An offload port and a plain port: TSO super-frames from the offload
/// side reach the plain side as valid segments (the kernel would drop a
/// segment with a bad checksum, and the transfer checks every byte).
#[test]
fn offload_and_plain_ports_mixed() {
    if !prerequisites("offload_and_plain_ports_mixed") {
        return;
    }
    let mut net = Net::new("m");
    let (t1, t2) = (net.ifname(1), net.ifname(2));
    let sw = start(
        &switch_yaml(&[(1, &t1, true), (2, &t2, false)], "normal", LEARN),
        None,
    );
    let (n1, n2) = (net.ns(1), net.ns(2));
    net.attach(&t1, &n1, "02:00:00:00:0c:01");
    net.attach(&t2, &n2, "02:00:00:00:0c:02");
    net.addr(&n1, &t1, "10.79.0.1/24");
    net.addr(&n2, &t2, "10.79.0.2/24");
    assert!(ping(&n1, "10.79.0.2", &[]));
    transfer(&n1, &n2, "10.79.0.2", 5004, 16 << 20);
    let plain = sw.tap(2).unwrap();
    assert!(
        plain.segmented() > 0,
        "no super-frame was segmented for the plain port"
    );
    assert_eq!(plain.offload_errors(), 0);
    // And back: plain frames to the offload port.
    transfer(&n2, &n1, "10.79.0.1", 5005, 4 << 20);
    sw.stop();
}

/// A VLAN trunk between two switches, three host namespaces. Switch A
/// runs flows/vlan-trunk.yaml: h1 on its VLAN 10 access port, h2 on its
/// VLAN 20 access port, its VLAN 10 trunk port wired (a kernel bridge in a
/// fourth namespace, which passes tags through) to switch B's trunk port;
/// B tags h3's frames with VLAN 10 and untags what comes back. (The test
/// machine's kernel has no 802.1Q interfaces, so a switch plays the
/// tagged host of the file.) h1 and h3 talk, TSO super-frames included
/// (A pushes and pops tags on them); h1 cannot reach h2.
#[test]
fn vlan_trunk_between_three_namespaces() {
    if !prerequisites("vlan_trunk_between_three_namespaces") {
        return;
    }
    let mut net = Net::new("v");
    let a: Vec<String> = (1..=4).map(|i| net.ifname(i)).collect();
    let (b_trunk, b_h3) = (net.ifname(5), net.ifname(6));
    let mut yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/vlan-trunk.yaml"),
    )
    .unwrap();
    for (old, new) in ["fs-acc10", "fs-acc20", "fs-trk10", "fs-trk20"]
        .iter()
        .zip(&a)
    {
        yaml = yaml.replace(old, new);
    }
    let sw_a = start(&yaml, None);
    let b_flows = "tables:\n  - id: 0\n    flows:\n      \
        - {name: tag, priority: 10, match: {in_port: 2}, actions: [{push_vlan: 10}, {output: 1}]}\n      \
        - {name: untag, priority: 10, match: {in_port: 1, vlan_vid: 10}, actions: [pop_vlan, {output: 2}]}\n";
    let sw_b = start(
        &switch_yaml(&[(1, &b_trunk, true), (2, &b_h3, true)], "drop", b_flows),
        None,
    );
    let (h1, h2, h3, wire) = (net.ns(1), net.ns(2), net.ns(3), net.ns(4));
    net.attach(&a[0], &h1, "02:00:00:00:00:01");
    net.attach(&a[1], &h2, "02:00:00:00:00:02");
    net.attach(&b_h3, &h3, "02:00:00:00:00:03");
    net.addr(&h1, &a[0], "10.80.0.1/24");
    net.addr(&h2, &a[1], "10.80.0.2/24");
    net.addr(&h3, &b_h3, "10.80.0.3/24");
    ip(&["-n", &wire, "link", "add", "br0", "type", "bridge"]);
    for dev in [&a[2], &b_trunk] {
        net.attach(dev, &wire, "02:00:00:00:01:00");
        ip(&["-n", &wire, "link", "set", "dev", dev, "master", "br0"]);
    }
    ip(&[
        "-n",
        &wire,
        "link",
        "set",
        "dev",
        &b_trunk,
        "address",
        "02:00:00:00:01:01",
    ]);
    ip(&["-n", &wire, "link", "set", "br0", "up"]);
    assert!(
        ping(&h1, "10.80.0.3", &[]),
        "access 10 -> trunk -> VLAN 10 host"
    );
    assert!(
        ping(&h3, "10.80.0.1", &[]),
        "VLAN 10 host -> trunk -> access 10"
    );
    transfer(&h1, &h3, "10.80.0.3", 5006, 8 << 20);
    transfer(&h3, &h1, "10.80.0.1", 5007, 8 << 20);
    assert!(!ping(&h1, "10.80.0.2", &[]), "VLAN 10 reached VLAN 20");
    let trunk = sw_a.snapshot();
    let t = trunk.ports.iter().find(|p| p.id == 3).unwrap();
    assert!(t.total.tx_bytes > 8 << 20 && t.total.rx_bytes > 8 << 20);
    sw_a.stop();
    sw_b.stop();
}

/// Three namespaces on a learning switch. While a transfer between 1 and
/// 2 runs, port 3 is removed from the switch; later a namespace holding a
/// port is deleted, and that port is marked down and counted. The
/// transfers complete, byte for byte.
#[test]
fn ports_removed_and_gone_while_traffic_flows() {
    if !prerequisites("ports_removed_and_gone_while_traffic_flows") {
        return;
    }
    let mut net = Net::new("r");
    let t: Vec<String> = (1..=4).map(|i| net.ifname(i)).collect();
    let sw = start(
        &switch_yaml(
            &[
                (1, &t[0], true),
                (2, &t[1], true),
                (3, &t[2], true),
                (4, &t[3], false),
            ],
            "normal",
            LEARN,
        ),
        None,
    );
    let ns: Vec<String> = (1..=4).map(|i| net.ns(i)).collect();
    for i in 0..4 {
        net.attach(&t[i], &ns[i], &format!("02:00:00:00:0d:0{}", i + 1));
        net.addr(&ns[i], &t[i], &format!("10.81.0.{}/24", i + 1));
    }
    assert!(ping(&ns[0], "10.81.0.3", &[]));
    assert!(ping(&ns[0], "10.81.0.4", &[]));
    // Removal of port 3 during a transfer 1 -> 2.
    let addr: SocketAddr = "10.81.0.2:5008".parse().unwrap();
    let len = 64 << 20;
    let r = receiver(ns[1].clone(), addr, len);
    let from = ns[0].clone();
    let s = std::thread::spawn(move || send(&from, addr, len));
    std::thread::sleep(Duration::from_millis(100));
    sw.remove_port(3).unwrap();
    assert!(wait_for(|| sw.switch().settled()));
    s.join().unwrap().unwrap_or_else(|e| panic!("sender: {e}"));
    r.join()
        .unwrap()
        .unwrap_or_else(|e| panic!("receiver: {e}"));
    assert!(
        !ping(&ns[0], "10.81.0.3", &[]),
        "removed port still forwards"
    );
    // The namespace of port 4 is deleted: its device goes, the port is
    // marked down and counted; 1 <-> 2 keeps working.
    let p4 = sw.tap(4).unwrap();
    let ns4 = ns[3].clone();
    net.delete(&ns4);
    // Floods (ARP for an unknown address) reach port 4 and find it gone.
    assert!(
        wait_for(|| {
            let _ = ping(&ns[0], "10.81.0.99", &["-c", "1", "-W", "1"]);
            p4.is_gone()
        }),
        "port 4 not marked gone"
    );
    assert!(!p4.is_up());
    assert_eq!(p4.gone_events(), 1);
    transfer(&ns[0], &ns[1], "10.81.0.2", 5009, 8 << 20);
    assert!(ping(&ns[1], "10.81.0.1", &[]));
    sw.stop();
}

/// `flowswitch run FILE --pcap 1=FILE --run-dir DIR` as a process: it
/// forwards, serves its control socket, exits 0 on SIGTERM, removes its
/// socket and TAPs, and the pcap file holds port 1's echo requests
/// (received) and replies (sent).
#[test]
fn run_command_forwards_captures_and_cleans_up() {
    if !prerequisites("run_command_forwards_captures_and_cleans_up") {
        return;
    }
    let mut net = Net::new("c");
    let (t1, t2) = (net.ifname(1), net.ifname(2));
    let dir = std::env::temp_dir();
    let yaml = dir.join(format!("fs-{}-run.yaml", std::process::id()));
    let pcap = dir.join(format!("fs-{}-run.pcap", std::process::id()));
    let run_dir = dir.join(format!("fs-{}-run.d", std::process::id()));
    let socket = run_dir.join("t.sock");
    std::fs::write(
        &yaml,
        switch_yaml(&[(1, &t1, true), (2, &t2, false)], "normal", LEARN),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .arg("run")
        .arg(&yaml)
        .arg("--pcap")
        .arg(format!("1={}", pcap.display()))
        .arg("--run-dir")
        .arg(&run_dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start flowswitch run");
    let mut guard = ChildGuard(Some(child));
    let exists = |d: &str| Path::new(&format!("/sys/class/net/{d}")).exists();
    assert!(wait_for(|| exists(&t1) && exists(&t2)), "TAPs not created");
    assert!(wait_for(|| socket.exists()), "no control socket");
    let (n1, n2) = (net.ns(1), net.ns(2));
    net.attach(&t1, &n1, "02:00:00:00:0e:01");
    net.attach(&t2, &n2, "02:00:00:00:0e:02");
    net.addr(&n1, &t1, "10.82.0.1/24");
    net.addr(&n2, &t2, "10.82.0.2/24");
    assert!(ping(&n1, "10.82.0.2", &[]), "ping through flowswitch run");
    transfer(&n1, &n2, "10.82.0.2", 5010, 2 << 20);
    // Without traffic the workers sleep: the busy poll ends within
    // `busy_poll_us` of the last frame, so an idle second costs the whole
    // process next to no CPU (a spinning worker would take the full second).
    let pid = guard.0.as_ref().map(|c| c.id()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_ticks(pid) - before;
    assert!(idle <= 10, "idle switch used {idle} clock ticks in 1 s");
    let child = guard.0.take().unwrap();
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}: {stdout}", out.status);
    assert!(stdout.contains("port 1: rx"), "{stdout}");
    assert!(!socket.exists(), "the socket outlived the switch");
    let _ = std::fs::remove_dir(&run_dir);
    // The TAPs went with the process, from the namespaces they were in.
    for (ns, dev) in [(&n1, &t1), (&n2, &t2)] {
        let gone = !Command::new("ip")
            .args(["-n", ns, "link", "show", dev])
            .output()
            .unwrap()
            .status
            .success();
        assert!(gone, "{dev} still exists in {ns}");
    }
    let file = std::fs::File::open(&pcap).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let (mut requests, mut replies, mut tcp) = (0, 0, 0);
    while let Some(p) = reader.next_packet() {
        let p = p.unwrap();
        let d = &p.data;
        if d.len() > 34 && d[12..14] == [8, 0] {
            match (d[23], d[34]) {
                (1, 8) => requests += 1,
                (1, 0) => replies += 1,
                (6, _) => tcp += 1,
                _ => {}
            }
        }
    }
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&yaml);
    assert!(
        requests >= 1 && replies >= 1,
        "{requests} requests, {replies} replies"
    );
    assert!(tcp > 0);
}

/// User plus system CPU time of process `pid` so far, in clock ticks
/// (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The fields after the command name (which may hold spaces) in parens.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after `)`.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}
