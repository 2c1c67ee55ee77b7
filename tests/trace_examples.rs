//! The must-show traces: every file in flows/ and topologies/ and the
//! examples of shared/design/yaml.md load and trace as documented. Frames
//! are built with `packet::build`; the frames expected out are built the
//! same way from the values the actions should produce (so checksums are
//! computed from scratch, not updated), and compared byte for byte with
//! what the datapath sends. Each case runs through the library on both
//! engines and through `flowswitch trace --json` on both engines.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use controller::dataplane::EngineOpt;
use controller::trace::{hex, trace_file, Input};
use datapath::packet::build::{self, Builder, Icmp, Ipv4, Ipv6, Tcp, Udp};
use datapath::packet::csum;
use serde_json::{json, Value};

type Mac = [u8; 6];

const H1: Mac = [2, 0, 0, 0, 0, 1];
const H2: Mac = [2, 0, 0, 0, 0, 2];
const H3: Mac = [2, 0, 0, 0, 0, 3];
const H4: Mac = [2, 0, 0, 0, 0, 4];
const ROUTER: Mac = [2, 0, 0, 0, 0, 0x64];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// One input frame and what must come of it.
struct Case {
    in_port: &'static str,
    frame: Vec<u8>,
    tables: Vec<(u8, Option<&'static str>)>,
    outputs: Vec<(u32, Vec<u8>)>,
    drop: Option<&'static str>,
}

fn case(in_port: &'static str, frame: Vec<u8>) -> Case {
    Case {
        in_port,
        frame,
        tables: Vec::new(),
        outputs: Vec::new(),
        drop: None,
    }
}

impl Case {
    fn table(mut self, t: u8, flow: &'static str) -> Self {
        self.tables.push((t, Some(flow)));
        self
    }
    fn miss(mut self, t: u8) -> Self {
        self.tables.push((t, None));
        self
    }
    fn out(mut self, port: u32, frame: &[u8]) -> Self {
        self.outputs.push((port, frame.to_vec()));
        self
    }
    /// The input frame, unchanged, to each of `ports`.
    fn same_to(mut self, ports: &[u32]) -> Self {
        for &p in ports {
            self.outputs.push((p, self.frame.clone()));
        }
        self
    }
    fn dropped(mut self, reason: &'static str) -> Self {
        self.drop = Some(reason);
        self
    }

    fn json(&self) -> Value {
        json!({
            "tables": self.tables.iter().map(|(t, f)| json!({"table": t, "flow": f})).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|(p, f)| json!({"port": p, "frame": hex(f)})).collect::<Vec<_>>(),
            "drop_reason": self.drop,
        })
    }
}

/// Runs `cases` in order through `file` (relative to the repository, or
/// absolute): library and CLI, both engines.
fn check(file: &Path, cases: &[Case]) {
    let path = repo().join(file);
    let want = Value::Array(cases.iter().map(Case::json).collect());
    // Every IP frame sent carries correct checksums.
    for c in cases {
        for (p, f) in &c.outputs {
            csum::verify(f).unwrap_or_else(|e| panic!("expected frame to {p}: {e}"));
        }
    }
    let inputs: Vec<Input> = cases
        .iter()
        .map(|c| Input {
            in_port: c.in_port.to_string(),
            frame: c.frame.clone(),
        })
        .collect();
    for engine in [EngineOpt::Jit, EngineOpt::Interp] {
        let (_, traces) = trace_file(&path, &inputs, engine)
            .unwrap_or_else(|e| panic!("{}: {}", file.display(), e.join("\n")));
        let got = serde_json::to_value(&traces).unwrap();
        compare(
            &got,
            &want,
            &format!("{} (library, {engine:?})", file.display()),
        );
    }
    for engine in ["jit", "interp"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowswitch"));
        cmd.current_dir(repo()).arg("trace").arg(&path);
        for c in cases {
            cmd.args(["--in-port", c.in_port, "--frame", &hex(&c.frame)]);
        }
        let out = cmd.args(["--json", "--engine", engine]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        compare(&got, &want, &format!("{} (cli, {engine})", file.display()));
    }
}

/// Compares frame by frame, so that a failure names the frame.
fn compare(got: &Value, want: &Value, what: &str) {
    let (Some(g), Some(w)) = (got.as_array(), want.as_array()) else {
        panic!("{what}: not arrays: {got}");
    };
    assert_eq!(g.len(), w.len(), "{what}: {got}");
    for (i, (g, w)) in g.iter().zip(w).enumerate() {
        assert_eq!(g, w, "{what}: frame {i}\n got: {g}\nwant: {w}");
    }
}

fn tcp(
    src: Mac,
    dst: Mac,
    from: Ipv4Addr,
    to: Ipv4Addr,
    dport: u16,
    ttl: u8,
    len: usize,
) -> Vec<u8> {
    Builder::new(src, dst)
        .ipv4(Ipv4::new(from, to).ttl(ttl).ident(7))
        .tcp(Tcp::new(40000, dport).flags(0x18).seq(1).ack(2))
        .payload(&vec![0xab; len])
        .build()
}

fn udp(src: Mac, dst: Mac, from: Ipv4Addr, to: Ipv4Addr, dport: u16) -> Vec<u8> {
    build::udp4(src, dst, from, to, 5000, dport, b"hello")
}

// ---------------------------------------------------------------------------
// flows/example.yaml: the yaml.md switch example.

#[test]
fn yaml_md_switch_example() {
    let arp = build::arp_request(H1, ip(10, 0, 0, 1), ip(10, 0, 0, 2));
    let web = tcp(H1, H2, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 80, 64, 20);
    // nat-ish: ipv4_dst and eth_dst rewritten, TTL down by one; IPv4 and
    // TCP checksums recomputed from scratch for the expected frame.
    let nat_in = tcp(H1, ROUTER, ip(10, 0, 0, 1), ip(10, 0, 0, 100), 22, 64, 33);
    let nat_out = tcp(H1, H2, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 22, 63, 33);
    let nat_ttl1 = tcp(H1, ROUTER, ip(10, 0, 0, 1), ip(10, 0, 0, 100), 22, 1, 33);
    let h2_to_h1 = udp(H2, H1, ip(10, 0, 0, 2), ip(10, 0, 0, 1), 9);
    let h1_to_h2 = udp(H1, H2, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 9);
    let h3_to_h1 = udp(H3, H1, ip(10, 0, 0, 3), ip(10, 0, 0, 1), 9);
    let runt = web[..30].to_vec();
    let cases = vec![
        case("1", arp).table(0, "arp").same_to(&[2, 3]),
        case("1", web).table(0, "web-to-h2").same_to(&[2]),
        case("fs-h1", nat_in).table(0, "nat-ish").out(2, &nat_out),
        case("1", nat_ttl1).table(0, "nat-ish").dropped("ttl"),
        // normal: H1 unknown, flooded; H2 learned on port 2.
        case("2", h2_to_h1.clone())
            .table(0, "rest")
            .table(1, "learn")
            .same_to(&[1, 3]),
        // H2 known: only port 2; H1 learned on port 1.
        case("1", h1_to_h2)
            .table(0, "rest")
            .table(1, "learn")
            .same_to(&[2]),
        case("fs-vm", h3_to_h1)
            .table(0, "rest")
            .table(1, "learn")
            .same_to(&[1]),
        // The same frame again: the learned entry, through the cache.
        case("2", h2_to_h1)
            .table(0, "rest")
            .table(1, "learn")
            .same_to(&[1]),
        case("1", runt).dropped("parse_ipv4"),
    ];
    check(Path::new("flows/example.yaml"), &cases);
}

/// The token bucket of `meters:`, as documented (starts full, credit in
/// bytes at rate_kbps / 8 bytes per ms): which of `lens`, arriving 1 ms
/// apart from t = 0, pass.
fn bucket(rate_kbps: u64, burst_kb: u64, lens: &[usize]) -> Vec<bool> {
    // Micro-bits, as exact integers.
    let cap = burst_kb * 1000 * 8_000_000;
    let mut credit = cap;
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            if i > 0 {
                credit = (credit + rate_kbps * 1_000_000).min(cap);
            }
            let cost = len as u64 * 8_000_000;
            if credit >= cost {
                credit -= cost;
                true
            } else {
                false
            }
        })
        .collect()
}

#[test]
fn yaml_md_meter_drops_over_its_rate() {
    // slow: 10,000 kbps (1,250 bytes per ms), 64 kB burst; 9,014-byte
    // frames every ms drain it.
    let web = tcp(H1, H2, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 80, 64, 8960);
    assert_eq!(web.len(), 9014);
    let pass = bucket(10_000, 64, &[web.len(); 20]);
    let n_pass = pass.iter().filter(|p| **p).count();
    assert!(n_pass > 5 && n_pass < 15, "{n_pass}");
    let cases: Vec<Case> = pass
        .iter()
        .map(|&p| {
            let c = case("1", web.clone()).table(0, "web-to-h2");
            if p {
                c.same_to(&[2])
            } else {
                c.dropped("meter")
            }
        })
        .collect();
    check(Path::new("flows/example.yaml"), &cases);
}

// ---------------------------------------------------------------------------
// flows/acl.yaml: explicit drop, goto_table, meters, ranges, IPv6, miss drop.

#[test]
fn acl_example() {
    let (client, server, quar) = (H1, H2, H3);
    let quarantined = udp(quar, server, ip(10, 0, 0, 3), ip(10, 0, 0, 2), 80);
    let arp = build::arp_request(client, ip(10, 0, 0, 1), ip(10, 0, 0, 2));
    let ping = build::icmp4_echo(
        client,
        server,
        ip(10, 0, 0, 1),
        ip(10, 0, 0, 2),
        true,
        1,
        1,
        b"ping",
    );
    let pong = build::icmp4_echo(
        server,
        client,
        ip(10, 0, 0, 2),
        ip(10, 0, 0, 1),
        false,
        1,
        1,
        b"ping",
    );
    let stray = udp(client, server, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 9999);
    let app = udp(client, server, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 8050);
    let app_edge = udp(client, server, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 8101);
    let v6 = |n: u16| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n);
    let web6 = build::tcp6(client, server, v6(1), v6(2), 40000, 80, 0x02, b"");
    let ns = Builder::new(client, [0x33, 0x33, 0xff, 0, 0, 2])
        .ipv6(Ipv6::new(v6(1), Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2)).hop_limit(255))
        .icmp(Icmp::new(135, 0))
        .payload(&[0; 20])
        .build();
    let cases = vec![
        case("3", quarantined)
            .table(0, "quarantine")
            .dropped("drop"),
        case("1", arp)
            .table(0, "arp")
            .table(1, "switch")
            .same_to(&[2, 3]),
        // The server's MAC is not learned yet: flooded.
        case("1", ping)
            .table(0, "echo-request")
            .table(1, "switch")
            .same_to(&[2, 3]),
        case("2", pong)
            .table(0, "echo-reply")
            .table(1, "switch")
            .same_to(&[1]),
        case("1", stray).miss(0).dropped("no_match"),
        case("1", app)
            .table(0, "app-ports")
            .table(1, "switch")
            .same_to(&[2]),
        case("1", app_edge).miss(0).dropped("no_match"),
        case("1", web6)
            .table(0, "web-in")
            .table(1, "switch")
            .same_to(&[2]),
        case("1", ns)
            .table(0, "nd-solicit")
            .table(1, "switch")
            .same_to(&[2, 3]),
    ];
    check(Path::new("flows/acl.yaml"), &cases);
    check(Path::new("topologies/acl.yaml"), &cases);
}

// ---------------------------------------------------------------------------
// flows/l2-learning.yaml and the yaml.md topology example: normal across
// frames, miss normal.

fn learning_cases(p1: &'static str, p2: &'static str) -> Vec<Case> {
    let a = udp(H1, H2, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 7);
    let b = udp(H2, H1, ip(10, 0, 0, 2), ip(10, 0, 0, 1), 7);
    let bc = build::arp_request(H2, ip(10, 0, 0, 2), ip(10, 0, 0, 1));
    vec![
        case(p1, a.clone()).table(0, "learn").same_to(&[2]),
        case(p2, b).table(0, "learn").same_to(&[1]),
        case(p1, a).table(0, "learn").same_to(&[2]),
        case(p2, bc).table(0, "learn").same_to(&[1]),
    ]
}

#[test]
fn l2_learning_example_and_its_topologies() {
    // Standalone (no ports: the ingress ports used are the ports).
    check(
        Path::new("flows/l2-learning.yaml"),
        &learning_cases("1", "2"),
    );
    check(
        Path::new("topologies/two-hosts.yaml"),
        &learning_cases("h1", "h2"),
    );
    // The yaml.md topology example as written (its last check names an
    // unknown host, which is only a warning).
    let dir = std::env::temp_dir().join(format!("fs-trace-topo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::create_dir_all(dir.join("topologies")).unwrap();
    std::fs::copy(
        repo().join("flows/l2-learning.yaml"),
        dir.join("flows/l2-learning.yaml"),
    )
    .unwrap();
    let text = r#"name: two-hosts
flows: ../flows/l2-learning.yaml    # a switch file, relative to this file; its ports are ignored
hosts:                              # each host is a network namespace with one TAP link
  - {name: h1, port: 1, ip: 10.0.0.1/24, mac: "02:00:00:00:00:01"}
  - {name: h2, port: 2, ip: 10.0.0.2/24, mac: "02:00:00:00:00:02"}
checks:                             # what `flowswitch up --check` runs, in order
  - pingall
  - {iperf: {from: h1, to: h2, seconds: 5}}
  - {expect_no_ping: {from: h1, to: h3}}
"#;
    let topo = dir.join("topologies/two-hosts.yaml");
    std::fs::write(&topo, text).unwrap();
    check(&topo, &learning_cases("h1", "2"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// flows/star.yaml: mirror, flood, meter, miss drop.

#[test]
fn star_example() {
    let h = |n: u8| -> Mac { [2, 0, 0, 0, 1, n] };
    let to_h1 = udp(h(2), h(1), ip(10, 0, 1, 2), ip(10, 0, 1, 1), 7);
    let bcast = build::arp_request(h(3), ip(10, 0, 1, 3), ip(10, 0, 1, 1));
    let mcast = udp(
        h(4),
        [1, 0, 0x5e, 0, 0, 9],
        ip(10, 0, 1, 4),
        ip(224, 0, 0, 9),
        7,
    );
    let to_h8 = udp(h(1), h(8), ip(10, 0, 1, 1), ip(10, 0, 1, 8), 7);
    let unknown = udp(h(1), h(99), ip(10, 0, 1, 1), ip(10, 0, 1, 99), 7);
    let cases = vec![
        // mirror fs-s8 first, then output fs-s1: the copy goes first.
        case("2", to_h1).table(0, "to-h1").same_to(&[8, 1]),
        case("3", bcast)
            .table(0, "group")
            .same_to(&[1, 2, 4, 5, 6, 7, 8]),
        case("4", mcast)
            .table(0, "group")
            .same_to(&[1, 2, 3, 5, 6, 7, 8]),
        case("1", to_h8).table(0, "to-h8").same_to(&[8]),
        case("1", unknown).miss(0).dropped("no_match"),
    ];
    check(Path::new("flows/star.yaml"), &cases);
    check(Path::new("topologies/star.yaml"), &cases);
}

// ---------------------------------------------------------------------------
// flows/vlan-trunk.yaml: push_vlan, pop_vlan, goto_table.

#[test]
fn vlan_trunk_example() {
    let plain = |src, dst, to: Ipv4Addr| udp(src, dst, ip(10, 0, 0, 1), to, 7);
    let tagged = |vid: u16, src, dst, to: Ipv4Addr| {
        Builder::new(src, dst)
            .vlan(vid, 0)
            .ipv4(Ipv4::new(ip(10, 0, 0, 1), to))
            .udp(Udp::new(5000, 7))
            .payload(b"hello")
            .build()
    };
    let a = plain(H1, H3, ip(10, 0, 0, 3));
    let b = tagged(10, H3, H1, ip(10, 0, 0, 1));
    let c = build::arp_request(H2, ip(10, 0, 0, 2), ip(10, 0, 0, 4));
    let mut c_tagged = c.clone();
    c_tagged.splice(12..12, [0x81, 0x00, 0x00, 20]);
    let d = {
        let mut f = build::arp_request(H4, ip(10, 0, 0, 4), ip(10, 0, 0, 2));
        f.splice(12..12, [0x81, 0x00, 0x00, 20]);
        f
    };
    let mut d_plain = d.clone();
    d_plain.drain(12..16);
    let cases = vec![
        // Access port 1: tagged with VLAN 10, then forwarded to the trunk.
        case("1", a.clone())
            .table(0, "access-10-in")
            .table(1, "to-trk10")
            .out(3, &tagged(10, H1, H3, ip(10, 0, 0, 3))),
        // Trunk port 3, VLAN 10, to h1: the tag is removed.
        case("3", b)
            .table(0, "trunk-10-in")
            .table(1, "to-acc10")
            .out(1, &plain(H3, H1, ip(10, 0, 0, 1))),
        // Broadcast from access port 2: tagged 20, to trunk 4.
        case("2", c)
            .table(0, "access-20-in")
            .table(1, "group-20-from-access")
            .out(4, &c_tagged),
        // Broadcast from trunk 4: untagged to access 2.
        case("4", d)
            .table(0, "trunk-20-in")
            .table(1, "group-20-from-trunk")
            .out(2, &d_plain),
        // A tagged frame on an access port, VLAN 20 on the VLAN 10 trunk:
        // nothing matches.
        case("1", tagged(10, H1, H3, ip(10, 0, 0, 3)))
            .miss(0)
            .dropped("no_match"),
        case("3", tagged(20, H3, H4, ip(10, 0, 0, 4)))
            .miss(0)
            .dropped("no_match"),
    ];
    check(Path::new("flows/vlan-trunk.yaml"), &cases);
    check(Path::new("topologies/vlan-trunk.yaml"), &cases);
    // The cached path of the first frame gives the same result.
    let again: Vec<Case> = vec![
        case("1", a.clone())
            .table(0, "access-10-in")
            .table(1, "to-trk10")
            .out(3, &tagged(10, H1, H3, ip(10, 0, 0, 3))),
        case("1", a)
            .table(0, "access-10-in")
            .table(1, "to-trk10")
            .out(3, &tagged(10, H1, H3, ip(10, 0, 0, 3))),
    ];
    check(Path::new("flows/vlan-trunk.yaml"), &again);
}

// ---------------------------------------------------------------------------
// flows/demo.yaml (the switch of `flowswitch demo`): flood, normal, output
// by port name, miss drop.

#[test]
fn demo_switch() {
    let (a, b) = (ip(10, 0, 0, 1), ip(10, 0, 0, 2));
    let who_has = build::arp_request(H1, a, b);
    let echo = build::icmp4_echo(H1, H2, a, b, true, 9, 1, b"ping");
    let reply = build::icmp4_echo(H2, H1, b, a, false, 9, 1, b"ping");
    let data = tcp(H1, H2, a, b, 5001, 64, 100);
    let ack = tcp(H2, H1, b, a, 40000, 64, 0);
    // TCP to an address the flows do not name, and UDP: no flow.
    let stray = tcp(H1, H2, a, ip(10, 0, 0, 9), 5001, 64, 10);
    let dns = udp(H1, H2, a, b, 53);
    let cases = vec![
        case("h1", who_has).table(0, "arp").same_to(&[2]),
        // H2 unknown to `normal` (ARP went through `flood`): flooded.
        case("h1", echo).table(0, "ping").same_to(&[2]),
        case("h2", reply).table(0, "ping").same_to(&[1]),
        case("h1", data).table(0, "tcp-to-h2").same_to(&[2]),
        case("h2", ack).table(0, "tcp-to-h1").same_to(&[1]),
        case("h1", stray).miss(0).dropped("no_match"),
        case("1", dns).miss(0).dropped("no_match"),
    ];
    check(Path::new("flows/demo.yaml"), &cases);
}
