//! Tests of whole files: the examples of yaml.md, the files in flows/ and
//! topologies/, lowering, and one test per kind of mistake (each must give
//! exactly one error, at the right line and column).

use std::path::{Path, PathBuf};

use datapath::flow::key::{FlowKey, VLAN_PRESENT};
use datapath::flow::spec::{range_to_prefixes, Action, FlowSpec, SetField};

use super::*;

/// The switch-file example of shared/design/yaml.md, as written there.
const YAML_MD_SWITCH: &str = r#"switch:
  name: br0                 # names the control socket: /run/flowswitch/br0.sock
  threads: 2                # datapath worker threads (default: number of cores)
  miss: drop                # what a packet that matches no flow in a table gets: drop | normal | flood
ports:                      # optional when a topology file provides the ports
  - {id: 1, name: fs-h1}                          # TAP device, offload on, 1 queue
  - {id: 2, name: fs-h2, offload: false}          # plain TAP (no virtio-net header)
  - {id: 3, name: fs-vm, queues: 4}               # multi-queue TAP
meters:
  slow: {rate_kbps: 10000, burst_kb: 64}          # token bucket
tables:
  - id: 0
    flows:
      - name: arp                                 # unique in the file; the handle for ctl and stats
        priority: 100                             # 0..65535, higher wins
        match: {eth_type: arp}
        actions: [flood]
      - name: web-to-h2
        priority: 50
        match: {in_port: 1, eth_type: ipv4, ip_proto: tcp, tcp_dst: 80, ipv4_dst: 10.0.0.2/32}
        actions: [{meter: slow}, {output: 2}]
      - name: nat-ish
        priority: 40
        match: {eth_type: ipv4, ipv4_dst: 10.0.0.100}
        actions: [{set_field: {ipv4_dst: 10.0.0.2, eth_dst: "02:00:00:00:00:02"}}, dec_ttl, {output: 2}]
      - name: rest
        priority: 0
        actions: [{goto_table: 1}]
  - id: 1
    flows:
      - {name: learn, priority: 0, actions: [normal]}
"#;

/// The topology-file example of shared/design/yaml.md, as written there.
const YAML_MD_TOPOLOGY: &str = r#"name: two-hosts
flows: ../flows/l2-learning.yaml    # a switch file, relative to this file; its ports are ignored
hosts:                              # each host is a network namespace with one TAP link
  - {name: h1, port: 1, ip: 10.0.0.1/24, mac: "02:00:00:00:00:01"}
  - {name: h2, port: 2, ip: 10.0.0.2/24, mac: "02:00:00:00:00:02"}
checks:                             # what `flowswitch up --check` runs, in order
  - pingall
  - {iperf: {from: h1, to: h2, seconds: 5}}
  - {expect_no_ping: {from: h1, to: h3}}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sw(text: &str) -> Result<SwitchPlan, LoadErrors> {
    switch_from_str(Path::new("bad.yaml"), text)
}

fn key_with(f: impl FnOnce(&mut FlowKey)) -> FlowKey {
    let mut k = FlowKey::default();
    f(&mut k);
    k
}

fn matches_key(f: &FlowSpec, k: &FlowKey) -> bool {
    f.matches.iter().any(|m| m.matches(k))
}

#[test]
fn yaml_md_blocks_are_copied_exactly() {
    let path = repo().join("../shared/design/yaml.md");
    let Ok(md) = std::fs::read_to_string(&path) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{} is required under CI=true",
            path.display()
        );
        eprintln!("skipped: {} not found", path.display());
        return;
    };
    let blocks: Vec<&str> = md
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks, [YAML_MD_SWITCH, YAML_MD_TOPOLOGY]);
}

#[test]
fn flows_example_is_the_yaml_md_switch_example() {
    let text = std::fs::read_to_string(repo().join("flows/example.yaml")).unwrap();
    assert_eq!(text, YAML_MD_SWITCH);
}

#[test]
fn yaml_md_switch_example_lowers_as_documented() {
    let p = sw(YAML_MD_SWITCH).unwrap();
    assert_eq!(p.name, "br0");
    assert_eq!(p.threads, 2);
    assert_eq!(p.miss, Miss::Drop);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.ports,
        [
            PortDesc {
                id: 1,
                name: "fs-h1".into(),
                offload: true,
                queues: 1
            },
            PortDesc {
                id: 2,
                name: "fs-h2".into(),
                offload: false,
                queues: 1
            },
            PortDesc {
                id: 3,
                name: "fs-vm".into(),
                offload: true,
                queues: 4
            },
        ]
    );
    assert_eq!(
        p.meters,
        [MeterDesc {
            name: "slow".into(),
            rate_kbps: 10000,
            burst_kb: 64
        }]
    );
    assert_eq!(
        p.tables,
        [
            TableDesc {
                id: 0,
                flows: vec![0, 1, 2, 3]
            },
            TableDesc {
                id: 1,
                flows: vec![4]
            }
        ]
    );
    let names: Vec<&str> = p.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["arp", "web-to-h2", "nat-ish", "rest", "learn"]);
    assert_eq!(p.flow_at[1].to_string(), "bad.yaml:18:9");

    let arp = &p.flows[0];
    assert_eq!((arp.table, arp.priority), (0, 100));
    assert_eq!(arp.actions, [Action::Flood]);
    assert_eq!(arp.matches.len(), 1);
    assert!(matches_key(arp, &key_with(|k| k.set_eth_type(0x0806))));
    assert!(!matches_key(arp, &key_with(|k| k.set_eth_type(0x0800))));

    let web = &p.flows[1];
    assert_eq!(web.actions, [Action::Meter(0), Action::Output(vec![2])]);
    assert_eq!(web.matches.len(), 1);
    let hit = key_with(|k| {
        k.set_in_port(1);
        k.set_eth_type(0x0800);
        k.set_ip_proto(6);
        k.set_tp_dst(80);
        k.set_nw_dst(0x0a00_0002);
        k.set_nw_src(0x0a00_0001);
        k.set_tp_src(40000);
    });
    assert!(matches_key(web, &hit));
    for miss in [
        hit.clone_with_port(2),
        {
            let mut k = hit;
            k.set_tp_dst(81);
            k
        },
        {
            let mut k = hit;
            k.set_ip_proto(17);
            k
        },
        {
            let mut k = hit;
            k.set_nw_dst(0x0a00_0003);
            k
        },
    ] {
        assert!(!matches_key(web, &miss), "{miss:?}");
    }

    let nat = &p.flows[2];
    assert_eq!(
        nat.actions,
        [
            Action::SetField(vec![
                SetField::EthDst(0x0200_0000_0002),
                SetField::Ipv4Dst(0x0a00_0002)
            ]),
            Action::DecTtl,
            Action::Output(vec![2])
        ]
    );
    assert_eq!(p.flows[3].actions, [Action::GotoTable(1)]);
    assert_eq!(p.flows[3].matches, [datapath::flow::spec::Match::any()]);
    assert_eq!(
        (p.flows[4].table, p.flows[4].actions.clone()),
        (1, vec![Action::Normal])
    );
}

trait WithPort {
    fn clone_with_port(&self, p: u32) -> FlowKey;
}

impl WithPort for FlowKey {
    fn clone_with_port(&self, p: u32) -> FlowKey {
        let mut k = *self;
        k.set_in_port(p);
        k
    }
}

#[test]
fn yaml_md_topology_example_loads_as_written() {
    // As if it were topologies/example.yaml, so that its `flows:` resolves.
    let t = topology_from_str(&repo().join("topologies/example.yaml"), YAML_MD_TOPOLOGY).unwrap();
    assert_eq!(t.name, "two-hosts");
    assert_eq!(t.hosts.len(), 2);
    assert_eq!(t.hosts[1].mac, value::Mac(0x0200_0000_0002));
    assert_eq!(t.checks.len(), 3);
    assert_eq!(t.switch.name, "l2");
    assert!(t.switch.ports_known);
    let ports: Vec<(u32, &str)> = t
        .switch
        .ports
        .iter()
        .map(|p| (p.id, p.name.as_str()))
        .collect();
    assert_eq!(ports, [(1, "h1"), (2, "h2")]);
    // h3 is not a host: a warning at its place, not an error.
    assert_eq!(t.warnings.len(), 1);
    assert!(t.warnings[0]
        .to_string()
        .contains("example.yaml:9:37: warning: `h3`"));
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_file_in_flows_loads_without_warnings() {
    let files = yaml_files("flows");
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let p = load_switch(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        assert!(p.warnings.is_empty(), "{}: {:?}", f.display(), p.warnings);
        assert!(!p.flows.is_empty());
        assert!(matches!(load(&f), Ok(Loaded::Switch(_))));
    }
}

#[test]
fn every_file_in_topologies_loads_without_warnings() {
    let files = yaml_files("topologies");
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let t = load_topology(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        assert!(t.warnings.is_empty(), "{}: {:?}", f.display(), t.warnings);
        assert!(t.switch.warnings.is_empty());
        assert!(matches!(load(&f), Ok(Loaded::Topology(_))));
        // Every host port is a switch port and vice versa.
        let mut host_ports: Vec<u32> = t.hosts.iter().map(|h| h.port).collect();
        host_ports.sort_unstable();
        let ports: Vec<u32> = t.switch.ports.iter().map(|p| p.id).collect();
        assert_eq!(host_ports, ports);
    }
    let star = load_topology(&repo().join("topologies/star.yaml")).unwrap();
    assert_eq!(star.hosts.len(), 8);
}

#[test]
fn vlan_trunk_example_tags_and_untags() {
    let t = load_topology(&repo().join("topologies/vlan-trunk.yaml")).unwrap();
    let f = t.switch.flow("access-10-in").unwrap();
    assert_eq!(
        f.actions,
        [Action::PushVlan { vid: 10, pcp: 0 }, Action::GotoTable(1)]
    );
    assert!(matches_key(f, &key_with(|k| k.set_in_port(1))));
    assert!(!matches_key(
        f,
        &key_with(|k| {
            k.set_in_port(1);
            k.set_vlan_tci(VLAN_PRESENT | 10);
        })
    ));
    let g = t.switch.flow("group-10-from-trunk").unwrap();
    let bcast = key_with(|k| {
        k.set_in_port(3);
        k.set_vlan_tci(VLAN_PRESENT | 10);
        k.set_eth_dst(0xffff_ffff_ffff);
    });
    assert!(matches_key(g, &bcast));
    let mut unicast = bcast;
    unicast.set_eth_dst(0x0200_0000_0001);
    assert!(!matches_key(g, &unicast));
}

#[test]
fn star_resolves_port_names_through_the_files_own_ports() {
    // Standalone, `fs-s8` is port 8 of `ports:`; under the topology the
    // ports are the hosts, and the name still resolves through the file.
    let standalone = load_switch(&repo().join("flows/star.yaml")).unwrap();
    let t = load_topology(&repo().join("topologies/star.yaml")).unwrap();
    for p in [&standalone, &t.switch] {
        assert_eq!(
            p.flow("to-h1").unwrap().actions,
            [Action::Mirror(8), Action::Output(vec![1])]
        );
    }
}

#[test]
fn implied_prerequisites_give_one_alternative_per_ip_family() {
    let p = sw("switch: {name: s}
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, match: {tcp_dst: 80}}
      - {name: b, priority: 2, match: {ip_dscp: 46, ip_ecn: 1}}
      - {name: c, priority: 3, match: {icmpv6_type: 135}}
      - {name: d, priority: 4, match: {ipv6_dst: \"fd00::/16\", udp_src: 53}}
")
    .unwrap();
    let a = &p.flows[0];
    assert_eq!(a.matches.len(), 2);
    for (et, hit) in [(0x0800, true), (0x86dd, true), (0x0806, false)] {
        let k = key_with(|k| {
            k.set_eth_type(et);
            k.set_ip_proto(6);
            k.set_tp_dst(80);
        });
        assert_eq!(matches_key(a, &k), hit, "{et:#x}");
    }
    let udp = key_with(|k| {
        k.set_eth_type(0x0800);
        k.set_ip_proto(17);
        k.set_tp_dst(80);
    });
    assert!(!matches_key(a, &udp));

    let b = &p.flows[1];
    assert_eq!(b.matches.len(), 2);
    let tos = key_with(|k| {
        k.set_eth_type(0x86dd);
        k.set_ip_tos((46 << 2) | 1);
    });
    assert!(matches_key(b, &tos));
    let mut other = tos;
    other.set_ip_tos(46 << 2);
    assert!(!matches_key(b, &other));

    let c = &p.flows[2];
    assert_eq!(c.matches.len(), 1);
    assert!(matches_key(
        c,
        &key_with(|k| {
            k.set_eth_type(0x86dd);
            k.set_ip_proto(58);
            k.set_tp_src(135);
        })
    ));

    let d = &p.flows[3];
    assert_eq!(d.matches.len(), 1);
    let v6 = key_with(|k| {
        k.set_eth_type(0x86dd);
        k.set_ip_proto(17);
        k.set_tp_src(53);
        k.set_ipv6_dst(0xfd00_u128 << 112 | 1);
    });
    assert!(matches_key(d, &v6));
    let mut out = v6;
    out.set_ipv6_dst(0xfe80_u128 << 112 | 1);
    assert!(!matches_key(d, &out));
}

#[test]
fn port_ranges_expand_to_prefixes_across_fields() {
    let p = sw("switch: {name: s}
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, match: {eth_type: ipv4, tcp_src: \"1000-1010\", tcp_dst: \"8000-8100\"}}
")
    .unwrap();
    let a = &p.flows[0];
    let n = range_to_prefixes(1000, 1010, 16).len() * range_to_prefixes(8000, 8100, 16).len();
    assert_eq!(a.matches.len(), n);
    let base = key_with(|k| {
        k.set_eth_type(0x0800);
        k.set_ip_proto(6);
    });
    for src in [999u16, 1000, 1005, 1010, 1011] {
        for dst in (7990u16..8110).step_by(3) {
            let mut k = base;
            k.set_tp_src(src);
            k.set_tp_dst(dst);
            let want = (1000..=1010).contains(&src) && (8000..=8100).contains(&dst);
            assert_eq!(matches_key(a, &k), want, "{src} {dst}");
            // Alternatives are disjoint: one key hits at most one.
            assert!(a.matches.iter().filter(|m| m.matches(&k)).count() <= 1);
        }
    }
}

#[test]
fn vlan_matches_use_the_tci() {
    let p = sw("switch: {name: s}
tables:
  - id: 0
    flows:
      - {name: vid, priority: 1, match: {vlan_vid: 10}}
      - {name: none, priority: 2, match: {vlan_vid: none}}
      - {name: any, priority: 3, match: {vlan_vid: any}}
      - {name: pcp, priority: 4, match: {vlan_pcp: 5}}
      - {name: vid0, priority: 5, match: {vlan_vid: 0, vlan_pcp: 0}}
")
    .unwrap();
    let untagged = FlowKey::default();
    let tag = |tci: u16| key_with(|k| k.set_vlan_tci(VLAN_PRESENT | tci));
    let cases = [
        ("vid", untagged, false),
        ("vid", tag(10), true),
        ("vid", tag(10 | 5 << 13), true),
        ("vid", tag(11), false),
        ("none", untagged, true),
        ("none", tag(10), false),
        ("any", untagged, false),
        ("any", tag(0), true),
        ("any", tag(4095), true),
        ("pcp", tag(7 | 5 << 13), true),
        ("pcp", tag(7 | 4 << 13), false),
        ("pcp", untagged, false),
        ("vid0", tag(0), true),
        ("vid0", untagged, false),
    ];
    for (name, k, want) in cases {
        assert_eq!(matches_key(p.flow(name).unwrap(), &k), want, "{name} {k:?}");
    }
}

#[test]
fn every_match_field_and_action_lowers() {
    let dir = tempdir("every");
    std::fs::write(dir.join("f.s"), "mov r0, 1\nexit\n").unwrap();
    std::fs::write(dir.join("a.o"), b"\x7fELF").unwrap();
    let text = r#"switch: {name: s, threads: 3, miss: flood, busy_poll_us: 0}
ports: [{id: 1, name: p1}, {id: 2, name: p2}, {id: 7, name: p7}]
meters: {m1: {rate_kbps: 1, burst_kb: 1}, 2mbit: {rate_kbps: 2, burst_kb: 2}}
tables:
  - id: 0
    flows:
      - name: l2
        priority: 9
        match: {in_port: p2, eth_src: "02:00:00:00:00:00/ff:ff:ff:00:00:00", eth_dst: "02:00:00:00:00:09", vlan_vid: 3, vlan_pcp: 1}
        actions: [{output: [p1, 7]}, in_port, {mirror: 2}, pop_vlan, {push_vlan: {vid: 4, pcp: 2}}, {goto_table: 5}]
      - name: arp
        priority: 8
        match: {arp_spa: 10.0.0.0/8, arp_tpa: 10.0.0.1, arp_op: reply, ebpf: {asm: f.s}}
        actions: [{meter: 2mbit}, {ebpf: {elf: a.o, section: act}}, normal]
      - name: tcp
        priority: 7
        match: {ipv4_src: 192.168.0.0/16, ip_proto: 6, tcp_flags: "+syn-ack", tcp_src: 22, ebpf: {asm: f.s}}
        actions: [{set_field: {eth_src: "02:00:00:00:00:01", ipv4_src: 1.2.3.4, ip_dscp: 10, tcp_src: 1, tcp_dst: 2, vlan_vid: 5, vlan_pcp: 6}}, drop]
        idle_timeout: 10
        hard_timeout: 20
      - name: udp6
        priority: 6
        match: {ipv6_src: "fd00::1", udp_dst: 53}
        actions: [{set_field: {ipv6_src: "fd00::2", ipv6_dst: "::1", udp_src: 3, udp_dst: 4}}, dec_ttl, flood]
      - name: icmp
        priority: 5
        match: {icmp_type: 3, icmp_code: 1, eth_type: 0x0800}
        actions: []
  - id: 5
    flows:
      - {name: end, priority: 0, actions: [{output: 1}]}
"#;
    let p = switch_from_str(&dir.join("s.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p.threads, p.miss, p.busy_poll_us), (3, Miss::Flood, 0));
    let f = |n: &str| p.flow(n).unwrap();
    assert_eq!(
        f("l2").actions,
        [
            Action::Output(vec![1, 7]),
            Action::InPort,
            Action::Mirror(2),
            Action::PopVlan,
            Action::PushVlan { vid: 4, pcp: 2 },
            Action::GotoTable(5)
        ]
    );
    let l2key = key_with(|k| {
        k.set_in_port(2);
        k.set_eth_src(0x0200_00ab_cdef);
        k.set_eth_dst(0x0200_0000_0009);
        k.set_vlan_tci(VLAN_PRESENT | 1 << 13 | 3);
    });
    assert!(matches_key(f("l2"), &l2key));
    let mut k2 = l2key;
    k2.set_eth_src(0x0300_00ab_cdef);
    assert!(!matches_key(f("l2"), &k2));

    assert_eq!(f("arp").filter, Some(0));
    assert_eq!(f("tcp").filter, Some(0), "one program per file");
    assert_eq!(p.filters.len(), 1);
    assert_eq!(
        p.filters[0].source,
        EbpfRef::Asm {
            path: dir.join("f.s")
        }
    );
    assert_eq!(
        p.action_programs[0].source,
        EbpfRef::Elf {
            path: dir.join("a.o"),
            section: "act".into()
        }
    );
    assert_eq!(
        f("arp").actions,
        [Action::Meter(1), Action::Ebpf(0), Action::Normal]
    );
    let arp = key_with(|k| {
        k.set_eth_type(0x0806);
        k.set_nw_src(0x0a01_0203);
        k.set_nw_dst(0x0a00_0001);
        k.set_arp_op(2);
    });
    assert!(matches_key(f("arp"), &arp));

    let tcp = f("tcp");
    assert_eq!((tcp.idle_timeout, tcp.hard_timeout), (10, 20));
    assert_eq!(
        tcp.actions,
        [
            Action::SetField(vec![
                SetField::EthSrc(0x0200_0000_0001),
                SetField::Ipv4Src(0x0102_0304),
                SetField::IpDscp(10),
                SetField::TcpSrc(1),
                SetField::TcpDst(2),
                SetField::VlanVid(5),
                SetField::VlanPcp(6),
            ]),
            Action::Drop
        ]
    );
    let syn = key_with(|k| {
        k.set_eth_type(0x0800);
        k.set_nw_src(0xc0a8_0101);
        k.set_ip_proto(6);
        k.set_tp_src(22);
        k.set_tcp_flags(0x002);
    });
    assert!(matches_key(tcp, &syn));
    let mut synack = syn;
    synack.set_tcp_flags(0x012);
    assert!(!matches_key(tcp, &synack));

    assert_eq!(
        f("udp6").actions,
        [
            Action::SetField(vec![
                SetField::Ipv6Src(0xfd00_u128 << 112 | 2),
                SetField::Ipv6Dst(1),
                SetField::UdpSrc(3),
                SetField::UdpDst(4),
            ]),
            Action::DecTtl,
            Action::Flood
        ]
    );
    assert_eq!(f("udp6").matches.len(), 1);
    assert!(f("icmp").actions.is_empty());
    assert!(matches_key(
        f("icmp"),
        &key_with(|k| {
            k.set_eth_type(0x0800);
            k.set_ip_proto(1);
            k.set_tp_src(3);
            k.set_tp_dst(1);
        })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fs-model-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checks that `res` is exactly one error, at the place where `needle`
/// starts on line `line` of `text`, whose message contains `fragment`.
fn one_error<T: std::fmt::Debug>(
    case: &str,
    file: &str,
    text: &str,
    res: Result<T, LoadErrors>,
    line: usize,
    needle: &str,
    fragment: &str,
) -> Result<(), String> {
    let the_line = text
        .lines()
        .nth(line - 1)
        .ok_or(format!("{case}: no line {line}"))?;
    let col = the_line
        .find(needle)
        .ok_or(format!("{case}: `{needle}` not on line {line}: {the_line}"))?
        + 1;
    let errs = match res {
        Ok(v) => return Err(format!("{case}: loaded: {v:?}")),
        Err(e) => e,
    };
    if errs.0.len() != 1 {
        return Err(format!("{case}: {} errors:\n{errs}", errs.0.len()));
    }
    let msg = errs.0[0].to_string();
    let prefix = format!("{file}:{line}:{col}: ");
    if !msg.starts_with(&prefix) {
        return Err(format!("{case}: want {prefix}, got {msg}"));
    }
    if !msg.contains(fragment) {
        return Err(format!("{case}: want `{fragment}` in {msg}"));
    }
    Ok(())
}

fn assert_all(results: Vec<Result<(), String>>) {
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

const HEAD: &str = "switch: {name: br0}
ports: [{id: 1, name: p1}, {id: 2, name: p2}]
meters: {slow: {rate_kbps: 10, burst_kb: 1}}
tables:
  - id: 0
    flows:
";

/// (case, flow lines after HEAD, line within them (1-based), needle, fragment)
const FLOW_MISTAKES: &[(&str, &str, usize, &str, &str)] = &[
    ("unknown match key", "      - {name: a, priority: 1, match: {tcp_dts: 80}}", 1, "tcp_dts", "unknown field `tcp_dts`"),
    ("unknown flow key", "      - {name: a, priority: 1, actoins: [flood]}", 1, "actoins", "unknown field `actoins`"),
    ("bad MAC", "      - {name: a, priority: 1, match: {eth_src: \"02:00:00:00:00:zz\"}}", 1, "\"02:", "not a MAC address"),
    ("MAC outside mask", "      - {name: a, priority: 1, match: {eth_dst: \"02:00:00:00:00:01/ff:ff:ff:00:00:00\"}}", 1, "\"02:", "outside the mask"),
    ("unquoted number as MAC", "      - {name: a, priority: 1, match: {eth_dst: 12}}", 1, "12", "is a number"),
    ("bad CIDR host bits", "      - {name: a, priority: 1, match: {ipv4_dst: 10.0.0.5/24}}", 1, "10.0.0.5", "did you mean 10.0.0.0/24"),
    ("bad CIDR prefix", "      - {name: a, priority: 1, match: {ipv4_src: 10.0.0.0/33}}", 1, "10.0.0.0", "longer than 32"),
    ("bad IPv4", "      - {name: a, priority: 1, match: {arp_tpa: 10.0.0}}", 1, "10.0.0", "not an IPv4 address"),
    ("bad IPv6", "      - {name: a, priority: 1, match: {ipv6_src: \"fd00::g\"}}", 1, "\"fd00", "not an IPv6 address"),
    ("empty range", "      - {name: a, priority: 1, match: {tcp_dst: \"9000-8000\"}}", 1, "\"9000", "is empty"),
    ("range past 65535", "      - {name: a, priority: 1, match: {udp_dst: \"1-70000\"}}", 1, "\"1-", "out of range"),
    ("range of words", "      - {name: a, priority: 1, match: {udp_src: http}}", 1, "http", "not a port or a range"),
    ("unknown action", "      - {name: a, priority: 1, actions: [floood]}", 1, "floood", "unknown action `floood`"),
    ("unknown action key", "      - {name: a, priority: 1, actions: [{outptu: 1}]}", 1, "outptu", "unknown action `outptu`"),
    ("two keys in an action", "      - {name: a, priority: 1, actions: [{output: 1, flood: 2}]}", 1, "flood", "second one"),
    ("argument to a plain action", "      - {name: a, priority: 1, actions: [{flood: 1}]}", 1, "flood", "takes no argument"),
    ("action missing its argument", "      - {name: a, priority: 1, actions: [meter]}", 1, "meter", "needs an argument"),
    ("undefined output port", "      - {name: a, priority: 1, actions: [{output: 3}]}", 1, "3}", "port `3` is not defined"),
    ("undefined port in a list", "      - {name: a, priority: 1, actions: [{output: [1, 9]}]}", 1, "9]", "port `9` is not defined"),
    ("undefined in_port name", "      - {name: a, priority: 1, match: {in_port: p9}}", 1, "p9", "port `p9` is not defined"),
    ("undefined mirror port", "      - {name: a, priority: 1, actions: [{mirror: p3}, {output: 1}]}", 1, "p3", "port `p3`"),
    ("port listed twice", "      - {name: a, priority: 1, actions: [{output: [p1, 1]}]}", 1, "1]", "listed twice"),
    ("empty output list", "      - {name: a, priority: 1, actions: [{output: []}]}", 1, "[]", "empty port list"),
    ("duplicate flow name", "      - {name: a, priority: 1}\n      - {name: a, priority: 2, match: {in_port: 1}}", 2, "a,", "duplicate flow name `a` (first at bad.yaml:7:16)"),
    ("overlap of equal priority", "      - {name: a, priority: 5, match: {ipv4_dst: 10.0.0.0/8}}\n      - {name: b, priority: 5, match: {ipv4_dst: 10.1.0.0/16, tcp_dst: 80}}", 2, "{name: b", "flows `b` and `a` in table 0 both have priority 5"),
    ("goto backwards", "      - {name: a, priority: 1, actions: [{goto_table: 0}]}", 1, "0}", "goto_table 0 from table 0"),
    ("goto a missing table", "      - {name: a, priority: 1, actions: [{goto_table: 7}]}", 1, "7}", "there is no table 7"),
    ("goto not last", "      - {name: a, priority: 1, actions: [{goto_table: 1}, flood]}\n  - id: 1", 1, "{goto", "must be the last action"),
    ("drop not last", "      - {name: a, priority: 1, actions: [drop, flood]}", 1, "drop", "`drop` must be the last"),
    ("unknown meter", "      - {name: a, priority: 1, actions: [{meter: fast}, flood]}", 1, "fast", "meter `fast` is not defined"),
    ("wrong type: word for priority", "      - {name: a, priority: high}", 1, "high", "`high` is not a number"),
    ("wrong type: list for match", "      - {name: a, priority: 1, match: [1, 2]}", 1, "[1", "invalid type: sequence"),
    ("wrong type: map for actions", "      - {name: a, priority: 1, actions: {output: 1}}", 1, "{output", "invalid type: map"),
    ("wrong type: table id", "      - {name: a, priority: 1, actions: [{goto_table: one}]}", 1, "one", "invalid type: string"),
    ("missing priority", "      - {name: a}", 1, "{name", "missing field `priority`"),
    ("priority out of range", "      - {name: a, priority: 70000}", 1, "70000", "priority 70000 is out of range 0..=65535"),
    ("negative priority", "      - {name: a, priority: -1}", 1, "-1", "negative"),
    ("vlan_vid over 4095", "      - {name: a, priority: 1, match: {vlan_vid: 4096}}", 1, "4096", "out of range 0..=4095"),
    ("vlan_pcp over 7", "      - {name: a, priority: 1, match: {vlan_pcp: 8}}", 1, "8}", "out of range 0..=7"),
    ("push_vlan over 4095", "      - {name: a, priority: 1, actions: [{push_vlan: 5000}]}", 1, "5000", "out of range"),
    ("arp with tcp_dst", "      - {name: a, priority: 1, match: {eth_type: arp, tcp_dst: 80}}", 1, "tcp_dst", "`tcp_dst` needs eth_type ipv4 or ipv6, which contradicts `eth_type` at bad.yaml:7:40"),
    ("tcp with udp", "      - {name: a, priority: 1, match: {tcp_dst: 80, udp_src: 53}}", 1, "udp_src", "needs ip_proto udp, which contradicts `tcp_dst`"),
    ("ip_proto with icmp_type", "      - {name: a, priority: 1, match: {ip_proto: udp, icmp_type: 8}}", 1, "icmp_type", "needs ip_proto icmp"),
    ("ipv4 with ipv6", "      - {name: a, priority: 1, match: {ipv6_dst: \"::1\", ipv4_src: 10.0.0.1}}", 1, "ipv4_src", "needs eth_type ipv4, which contradicts `ipv6_dst`"),
    ("icmp under ipv6", "      - {name: a, priority: 1, match: {eth_type: ipv6, icmp_code: 0}}", 1, "icmp_code", "needs eth_type ipv4"),
    ("pcp on untagged", "      - {name: a, priority: 1, match: {vlan_vid: none, vlan_pcp: 3}}", 1, "vlan_pcp", "needs a VLAN tag"),
    ("bad tcp_flags", "      - {name: a, priority: 1, match: {tcp_flags: \"syn\"}}", 1, "\"syn", "each flag needs + (set) or -"),
    ("unknown eth_type", "      - {name: a, priority: 1, match: {eth_type: ip}}", 1, "ip}", "unknown eth_type `ip`"),
    ("unknown ip_proto", "      - {name: a, priority: 1, match: {ip_proto: sctpp}}", 1, "sctpp", "unknown ip_proto `sctpp`"),
    ("unknown arp_op", "      - {name: a, priority: 1, match: {arp_op: ask}}", 1, "ask", "unknown arp_op `ask`"),
    ("missing ebpf file", "      - {name: a, priority: 1, match: {ebpf: {asm: nope.s}}}", 1, "nope.s", "`nope.s`: no such file"),
    ("missing ebpf action file", "      - {name: a, priority: 1, actions: [{ebpf: {elf: nope.o, section: x}}]}", 1, "nope.o", "no such file"),
    ("elf without section", "      - {name: a, priority: 1, match: {ebpf: {elf: x.o}}}", 1, "{elf", "needs a `section:`"),
    ("unknown set_field key", "      - {name: a, priority: 1, actions: [{set_field: {ttl: 3}}]}", 1, "ttl", "unknown field `ttl`"),
    ("empty set_field", "      - {name: a, priority: 1, actions: [{set_field: {}}]}", 1, "{set_field", "names no field"),
    ("flow name with a space", "      - {name: \"a b\", priority: 1}", 1, "\"a b\"", "must be non-empty, without spaces"),
    ("dscp over 63", "      - {name: a, priority: 1, match: {ip_dscp: 64}}", 1, "64", "out of range 0..=63"),
];

#[test]
fn each_kind_of_flow_mistake_gives_one_error_at_its_place() {
    let results = FLOW_MISTAKES
        .iter()
        .map(|(case, lines, line, needle, fragment)| {
            let text = format!("{HEAD}{lines}\n");
            let line = HEAD.lines().count() + line;
            one_error(case, "bad.yaml", &text, sw(&text), line, needle, fragment)
        })
        .collect();
    assert_all(results);
}

/// (case, whole switch file, line, needle, fragment)
const FILE_MISTAKES: &[(&str, &str, usize, &str, &str)] = &[
    ("duplicate key", "switch: {name: a}\ntables: []\nswitch: {name: b}\n", 3, "switch", "`switch` appears twice in this mapping (first at bad.yaml:1:1)"),
    ("unknown top-level key", "switch: {name: a}\ntabels: []\n", 2, "tabels", "unknown field `tabels`"),
    ("unknown switch key", "switch: {name: a, thread: 2}\n", 1, "thread", "unknown field `thread`"),
    ("missing switch name", "switch: {miss: drop}\ntables: []\n", 1, "{miss", "missing field `name`"),
    ("unknown miss policy", "switch: {name: a, miss: dorp}\n", 1, "dorp", "unknown variant `dorp`"),
    ("zero threads", "switch: {name: a, threads: 0}\n", 1, "0}", "threads 0 is out of range 1..=1024"),
    ("busy poll too long", "switch: {name: a, busy_poll_us: 20000}\n", 1, "20000}", "busy_poll_us 20000 is out of range 0..=10000"),
    ("duplicate port id", "switch: {name: a}\nports:\n  - {id: 1, name: p1}\n  - {id: 1, name: p2}\n", 4, "1,", "duplicate port id `1` (first at bad.yaml:3:10)"),
    ("duplicate port name", "switch: {name: a}\nports:\n  - {id: 1, name: p1}\n  - {id: 2, name: p1}\n", 4, "p1", "duplicate port name `p1`"),
    ("port name too long", "switch: {name: a}\nports: [{id: 1, name: abcdefghijklmnop}]\n", 2, "abcdefghijklmnop", "1 to 15 characters"),
    ("port id 0", "switch: {name: a}\nports: [{id: 0, name: p}]\n", 2, "0,", "port id 0 is out of range"),
    ("zero queues", "switch: {name: a}\nports: [{id: 1, name: p, queues: 0}]\n", 2, "0}", "queues 0"),
    ("meter without rate", "switch: {name: a}\nmeters:\n  m: {burst_kb: 3}\n", 3, "{burst", "missing field `rate_kbps`"),
    ("meter name with a space", "switch: {name: a}\nmeters:\n  \"m 1\": {rate_kbps: 1, burst_kb: 3}\n", 3, "\"m 1", "not a valid name"),
    ("meter rate zero", "switch: {name: a}\nmeters:\n  m: {rate_kbps: 0, burst_kb: 3}\n", 3, "0,", "out of range 1.."),
    ("duplicate table id", "switch: {name: a}\ntables:\n  - id: 0\n  - id: 0\n", 4, "0", "duplicate table id `0`"),
    ("no table 0", "switch: {name: a}\ntables:\n  - id: 1\n", 2, "tables", "there is no table 0"),
    ("port name without ports", "switch: {name: a}\ntables:\n  - id: 0\n    flows: [{name: f, priority: 1, actions: [{output: p1}]}]\n", 4, "p1", "no `ports:` section"),
    ("syntax error", "switch: {name: a\ntables: []\n", 2, ": []", "YAML syntax"),
    ("two documents", "switch: {name: a}\n---\nswitch: {name: b}\n", 2, "---", "one YAML document"),
    ("mixed kinds", "switch: {name: a}\nhosts: []\n", 2, "hosts", "`hosts` belongs in a topology file"),
    ("neither kind", "colour: blue\n", 1, "colour", "neither a switch file"),
];

#[test]
fn each_kind_of_file_mistake_gives_one_error_at_its_place() {
    let results = FILE_MISTAKES
        .iter()
        .map(|(case, text, line, needle, fragment)| {
            let res = from_str(Path::new("bad.yaml"), text);
            one_error(case, "bad.yaml", text, res, *line, needle, fragment)
        })
        .collect();
    assert_all(results);
}

#[test]
fn overlap_error_names_both_flows_and_both_places() {
    let text = format!(
        "{HEAD}      - {{name: a, priority: 5, match: {{tcp_dst: \"1-1000\"}}}}\n      - {{name: x, priority: 5, match: {{tcp_dst: 2000}}}}\n      - {{name: b, priority: 5, match: {{eth_type: ipv6, tcp_dst: 443}}}}\n"
    );
    let e = sw(&text).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        e.0[0].to_string(),
        "bad.yaml:9:9: flows `b` and `a` in table 0 both have priority 5 and their matches overlap (`a` at bad.yaml:7:9): the result would depend on the order of the file"
    );
    // Other priorities, or other tables, may overlap freely.
    let ok = format!(
        "{HEAD}      - {{name: a, priority: 5, match: {{tcp_dst: \"1-1000\"}}}}\n      - {{name: b, priority: 6, match: {{tcp_dst: 443}}}}\n      - {{name: c, priority: 5, match: {{udp_dst: 443}}}}\n"
    );
    assert!(sw(&ok).is_ok());
}

#[test]
fn all_errors_of_a_file_are_reported_in_file_order() {
    let text = format!(
        "{HEAD}      - {{name: a, priority: 1, actions: [{{meter: x}}]}}\n      - {{name: a, priority: 2, actions: [{{output: 9}}]}}\n"
    );
    let e = sw(&text).unwrap_err();
    let lines: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(lines[0].starts_with("bad.yaml:7:50: meter `x`"), "{e}");
    assert!(
        lines[1].starts_with("bad.yaml:8:16: duplicate flow name"),
        "{e}"
    );
    assert!(lines[2].starts_with("bad.yaml:8:51: port `9`"), "{e}");
}

#[test]
fn ebpf_paths_resolve_relative_to_the_yaml_file() {
    let dir = tempdir("ebpf");
    std::fs::create_dir_all(dir.join("progs")).unwrap();
    std::fs::write(dir.join("progs/f.s"), "mov r0, 1\nexit\n").unwrap();
    let text = "switch: {name: s}
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, match: {ebpf: {asm: progs/f.s}}, actions: [{ebpf: {asm: progs/f.s}}]}
      - {name: b, priority: 2, match: {ebpf: {asm: progs/f.s}}}
";
    let p = switch_from_str(&dir.join("s.yaml"), text).unwrap();
    assert_eq!(p.flows[0].filter, Some(0));
    assert_eq!(p.flows[1].filter, Some(0));
    assert_eq!(p.flows[0].actions, [Action::Ebpf(0)]);
    assert_eq!(p.filters.len(), 1);
    assert_eq!(p.action_programs.len(), 1);
    assert_eq!(p.filters[0].source.path(), &dir.join("progs/f.s"));
    assert_eq!(p.filters[0].at.line, 5);
    // The same text elsewhere does not find the file.
    let other = tempdir("ebpf-other");
    let e = switch_from_str(&other.join("s.yaml"), text).unwrap_err();
    assert_eq!(e.0.len(), 3, "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

fn topo_head() -> String {
    let flows = repo().join("flows/l2-learning.yaml");
    format!(
        "name: t
flows: {}
hosts:
  - {{name: h1, port: 1, ip: 10.0.0.1/24}}
  - {{name: h2, port: 2, ip: 10.0.0.2/24, mac: \"02:00:00:00:00:02\"}}
",
        flows.display()
    )
}

/// (case, lines after the topology head, line within them, needle, fragment)
const TOPOLOGY_MISTAKES: &[(&str, &str, usize, &str, &str)] = &[
    (
        "host port twice",
        "  - {name: h3, port: 1, ip: 10.0.0.3/24}",
        1,
        "1, ip",
        "duplicate host port `1` (first at bad.yaml:4:22)",
    ),
    (
        "host name twice",
        "  - {name: h1, port: 3, ip: 10.0.0.3/24}",
        1,
        "h1",
        "duplicate host name `h1`",
    ),
    (
        "host address twice",
        "  - {name: h3, port: 3, ip: 10.0.0.2/16}",
        1,
        "10.0.0.2",
        "duplicate host address `10.0.0.2`",
    ),
    (
        "host MAC twice",
        "  - {name: h3, port: 3, ip: 10.0.0.3/24, mac: \"02:00:00:00:00:02\"}",
        1,
        "\"02",
        "duplicate host MAC `02:00:00:00:00:02`",
    ),
    (
        "multicast host MAC",
        "  - {name: h3, port: 3, ip: 10.0.0.3/24, mac: \"03:00:00:00:00:02\"}",
        1,
        "\"03",
        "multicast",
    ),
    (
        "address without prefix",
        "  - {name: h3, port: 3, ip: 10.0.0.3}",
        1,
        "10.0.0.3",
        "needs a prefix length",
    ),
    (
        "reserved host vlan",
        "  - {name: h3, port: 3, ip: 10.0.0.3/24, vlan: 4095}",
        1,
        "4095",
        "reserved",
    ),
    (
        "unknown host key",
        "  - {name: h3, port: 3, ip: 10.0.0.3/24, vlam: 3}",
        1,
        "vlam",
        "unknown field `vlam`",
    ),
    (
        "bad host name",
        "  - {name: 3h, port: 3, ip: 10.0.0.3/24}",
        1,
        "3h",
        "not a valid name",
    ),
    (
        "iperf to an unknown host",
        "checks:\n  - {iperf: {from: h1, to: h9}}",
        2,
        "h9",
        "host `h9` is not defined",
    ),
    (
        "ping from an unknown host",
        "checks:\n  - {expect_no_ping: {from: h7, to: h1}}",
        2,
        "h7",
        "host `h7` is not defined",
    ),
    (
        "iperf to itself",
        "checks:\n  - {iperf: {from: h1, to: h1}}",
        2,
        "h1}",
        "to itself",
    ),
    (
        "unknown check",
        "checks:\n  - pingal",
        2,
        "pingal",
        "unknown check `pingal`",
    ),
    (
        "unknown check key",
        "checks:\n  - {iperf: {from: h1, to: h2, secs: 3}}",
        2,
        "secs",
        "unknown field `secs`",
    ),
    (
        "too long an iperf",
        "checks:\n  - {iperf: {from: h1, to: h2, seconds: 7200}}",
        2,
        "7200",
        "seconds 7200 is out of range",
    ),
];

#[test]
fn each_kind_of_topology_mistake_gives_one_error_at_its_place() {
    let head = topo_head();
    let results = TOPOLOGY_MISTAKES
        .iter()
        .map(|(case, lines, line, needle, fragment)| {
            let text = format!("{head}{lines}\n");
            let line = head.lines().count() + line;
            let res = topology_from_str(Path::new("bad.yaml"), &text);
            one_error(case, "bad.yaml", &text, res, line, needle, fragment)
        })
        .collect();
    assert_all(results);
}

#[test]
fn topology_errors_in_the_switch_file_name_the_switch_file() {
    let dir = tempdir("topo");
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::create_dir_all(dir.join("topologies")).unwrap();
    let flows = "switch: {name: s}
ports: [{id: 7, name: p7}]
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, actions: [{output: 7}]}
      - {name: b, priority: 2, match: {in_port: h1}, actions: [{output: 2}]}
";
    std::fs::write(dir.join("flows/s.yaml"), flows).unwrap();
    let topo = "name: t
flows: ../flows/s.yaml
hosts:
  - {name: h1, port: 1, ip: 10.0.0.1/24}
  - {name: h2, port: 2, ip: 10.0.0.2/24}
";
    let tpath = dir.join("topologies/t.yaml");
    let e = topology_from_str(&tpath, topo).unwrap_err();
    // Port 7 is declared by the switch file but no host sits on it; the
    // host names resolve.
    assert_eq!(e.0.len(), 1, "{e}");
    let msg = e.0[0].to_string();
    let want = format!(
        "{}:6:51: port `7` is not defined",
        dir.join("flows/s.yaml").display()
    );
    assert!(msg.starts_with(&want), "{msg}");
    assert!(msg.contains("topology `t`"), "{msg}");

    let missing = topo.replace("s.yaml", "nope.yaml");
    let e = topology_from_str(&tpath, &missing).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let path = tpath.display().to_string();
    let res = Err::<(), _>(e);
    one_error(
        "missing flows",
        &path,
        &missing,
        res,
        2,
        "../flows",
        "cannot read",
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn derived_host_macs_and_kinds() {
    let text = format!("{}checks: [pingall]\n", topo_head());
    let t = topology_from_str(Path::new("t.yaml"), &text).unwrap();
    assert_eq!(t.hosts[0].mac, topology::derived_mac("h1"));
    assert_eq!(t.hosts[1].mac.to_string(), "02:00:00:00:00:02");
    assert_eq!(t.checks, [CheckSpec::Pingall]);
    assert_eq!(
        kind_of(Path::new("t.yaml"), &text).unwrap(),
        FileKind::Topology
    );
    assert_eq!(
        kind_of(Path::new("s.yaml"), YAML_MD_SWITCH).unwrap(),
        FileKind::Switch
    );
}

#[test]
fn threads_default_to_the_number_of_cores() {
    let p = sw("switch: {name: s}\n").unwrap();
    assert_eq!(p.threads, default_threads());
    assert!(p.threads >= 1);
    assert!(p.flows.is_empty() && p.tables.is_empty());
    assert_eq!(p.miss, Miss::Drop);
    assert_eq!(p.busy_poll_us, datapath::dp::switch::DEFAULT_BUSY_POLL_US);
    assert!(!p.ports_known);
}

#[test]
fn unreachable_tables_are_a_warning() {
    let p = sw("switch: {name: s}
tables:
  - id: 0
  - id: 3
    flows: [{name: a, priority: 1}]
")
    .unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(
        p.warnings[0].to_string(),
        "bad.yaml:4:9: warning: table 3 is never reached: no flow does goto_table 3"
    );
}

/// Untrusted YAML never panics the loader: random edits of every example
/// file, and pathological nesting, give `Ok` or located errors.
#[test]
fn mutated_files_never_panic_and_errors_have_places() {
    let mut texts: Vec<(PathBuf, String)> = Vec::new();
    for dir in ["flows", "topologies"] {
        for f in yaml_files(dir) {
            let t = std::fs::read_to_string(&f).unwrap();
            texts.push((f, t));
        }
    }
    let pieces = [
        "",
        " ",
        "\n",
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ",",
        "\"",
        "'",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "0",
        "-1",
        "99999999999999999999",
        "0x",
        "/",
        "..",
        "ab",
        "\t",
        "---\n",
        "? ",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut loaded = 0;
    for round in 0..600 {
        let (path, text) = &texts[round % texts.len()];
        let mut t = text.clone();
        for _ in 0..1 + next() % 3 {
            let mut at = (next() as usize) % (t.len() + 1);
            while !t.is_char_boundary(at) {
                at -= 1;
            }
            let cut = ((next() % 4) as usize).min(t.len() - at);
            let mut end = at + cut;
            while !t.is_char_boundary(end) {
                end += 1;
            }
            let piece = pieces[(next() as usize) % pieces.len()];
            t.replace_range(at..end, piece);
        }
        match from_str(path, &t) {
            Ok(_) => loaded += 1,
            Err(e) => {
                assert!(!e.0.is_empty());
                for err in &e.0 {
                    let loc = err.location().expect("every YAML error has a place");
                    assert!(loc.line >= 1 && loc.col >= 1, "{err}");
                }
            }
        }
    }
    assert!(loaded < 600, "mutations should break some files");
    for deep in [
        "[".repeat(100_000),
        "{a: ".repeat(50_000),
        "- ".repeat(20_000),
    ] {
        assert!(from_str(Path::new("deep.yaml"), &deep).is_err());
    }
}
