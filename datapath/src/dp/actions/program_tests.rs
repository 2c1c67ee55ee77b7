//! Compiled flows through the real helpers: each flow is compiled, verified
//! for the datapath's flow environment ([`flow_registry`]) and run on both
//! engines over a [`Frame`] with headroom and a real [`PacketState`] with
//! memory ports. The frames each port receives must be byte-identical
//! between the engines and equal to frames built independently
//! (`packet::build`, `packet::vlan`).

use std::sync::Arc;

use super::abi::{self, flow_registry};
use super::{Outcome, PacketState, FINAL};
use crate::dp::mac::{MacConfig, MacTable};
use crate::dp::meter::Meters;
use crate::dp::port::{Frame, MemPort, Port, PortId, PortSet};
use crate::dp::stats::{DropReason, WorkerCounters};
use crate::ebpf::elf;
use crate::ebpf::engine::{Engine, Loaded};
use crate::ebpf::maps::{MapDef, MapKind, Maps};
use crate::ebpf::vm::RunInput;
use crate::flow::compile::{
    compile_flow, flow_env, CompileOptions, DropReason as FlowDrop, Verdict, CTX_SIZE,
};
use crate::flow::spec::{Action, FlowSpec, Match, SetField};
use crate::packet::build::{Builder, Ipv4, Tcp, Udp};
use crate::packet::{extract, vlan};

const H1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const H2: [u8; 6] = [2, 0, 0, 0, 0, 2];
const H9: [u8; 6] = [2, 0, 0, 0, 0, 9];
const MS: u64 = 1_000_000;
const ENGINES: [Engine; 2] = [Engine::Interp, Engine::Jit];

/// Four memory ports (ids 1..=4), a MAC table, meters 0 (8 kbps, 1 kB
/// burst) and 1 (1 Gbps).
struct Dp {
    mems: Vec<Arc<MemPort>>,
    st: PacketState,
}

impl Dp {
    fn new() -> Self {
        let mems: Vec<_> = (1..=4)
            .map(|id| Arc::new(MemPort::new(id, format!("p{id}"))))
            .collect();
        let ports =
            PortSet::new(mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect()).unwrap();
        let mac = MacTable::with_seed(
            MacConfig {
                capacity: 1024,
                aging_ms: 300_000,
                refresh_ms: 0,
            },
            7,
        );
        let meters = Meters::new([(8, 1), (1_000_000, 100)]).unwrap();
        let counters = Arc::new(WorkerCounters::new(ports.len()));
        let st = PacketState::new(
            0,
            Arc::new(ports),
            Arc::new(mac),
            Arc::new(meters),
            counters,
        );
        Dp { mems, st }
    }

    /// One packet through one flow program, as the pipeline runs it.
    fn packet(&mut self, prog: &Loaded, bytes: &[u8], in_port: PortId, now_ns: u64) -> Sent {
        self.scan(&[prog], bytes, in_port, now_ns)
    }

    /// One packet through flow programs in order, until one matches.
    fn scan(&mut self, progs: &[&Loaded], bytes: &[u8], in_port: PortId, now_ns: u64) -> Sent {
        let mut frame = Frame::from_bytes(bytes);
        let parsed = extract(frame.data(), in_port).unwrap();
        let mut ctx = vec![0u8; CTX_SIZE];
        let base = frame.buffer_mut().as_ptr() as u64;
        abi::write_packet(&mut ctx, base, frame.start(), frame.len(), &parsed);
        self.st.begin(in_port, now_ns);
        let mut verdict = None;
        for prog in progs {
            let r0 = prog.run(RunInput::ctx(frame.buffer_mut(), &mut ctx).with_state(&mut self.st));
            verdict = Verdict::from_code(r0.expect("the program runs"));
            if verdict != Some(Verdict::NoMatch) {
                break;
            }
        }
        abi::frame_window(&ctx, &mut frame).unwrap();
        if let Some(Verdict::Output(p)) = verdict {
            self.st.output(frame.data(), p, FINAL);
        }
        let drop = match verdict {
            Some(Verdict::Drop(r)) => Some(match r {
                FlowDrop::Explicit => DropReason::Explicit,
                FlowDrop::Meter => DropReason::Meter,
                FlowDrop::Ttl => DropReason::Ttl,
                FlowDrop::Custom => DropReason::Custom,
            }),
            _ => None,
        };
        let outcome = self.st.finish(&mut frame, drop);
        self.st.flush();
        Sent {
            verdict,
            outcome,
            ports: self.mems.iter().map(|m| m.take_tx_bytes()).collect(),
        }
    }
}

/// What one packet did: the verdict, the outcome and what each port
/// (1..=4) received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    verdict: Option<Verdict>,
    outcome: Outcome,
    ports: Vec<Vec<Vec<u8>>>,
}

fn flow(actions: Vec<Action>) -> FlowSpec {
    FlowSpec {
        name: "f".into(),
        table: 0,
        priority: 1,
        matches: vec![Match::any()],
        filter: None,
        actions,
        idle_timeout: 0,
        hard_timeout: 0,
    }
}

fn load(spec: &FlowSpec, engine: Engine) -> Loaded {
    let insns = compile_flow(spec, &CompileOptions::default()).unwrap();
    Loaded::load(
        &insns,
        &flow_env(flow_registry(), Default::default()),
        engine,
    )
    .unwrap()
}

/// Runs the packets `(frame, in_port, ms)` in order through `spec` on a
/// fresh datapath per engine; checks the engines agree and returns what
/// each packet did.
fn run(spec: &FlowSpec, packets: &[(Vec<u8>, PortId, u64)]) -> Vec<Sent> {
    let mut results = ENGINES.map(|engine| {
        let prog = load(spec, engine);
        let mut dp = Dp::new();
        packets
            .iter()
            .map(|(bytes, port, ms)| dp.packet(&prog, bytes, *port, ms * MS))
            .collect::<Vec<_>>()
    });
    let jit = results[1].clone();
    assert_eq!(results[0], jit, "interpreter and JIT disagree");
    std::mem::take(&mut results[0])
}

fn tcp(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    Builder::new(src, dst)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .tcp(Tcp::new(1234, 80))
        .payload(b"payload")
        .build()
}

fn tagged(src: [u8; 6], dst: [u8; 6], vid: u16, pcp: u8) -> Vec<u8> {
    Builder::new(src, dst)
        .vlan(vid, pcp)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .tcp(Tcp::new(1234, 80))
        .payload(b"payload")
        .build()
}

/// Port outputs with `frames[i]` on port `i + 1`.
fn only(port: PortId, frames: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    (1..=4)
        .map(|p| if p == port { frames.clone() } else { vec![] })
        .collect()
}

#[test]
fn push_vlan_then_output_sends_the_tagged_frame() {
    let pkt = tcp(H1, H2);
    let r = run(
        &flow(vec![
            Action::PushVlan { vid: 100, pcp: 3 },
            Action::Output(vec![2]),
        ]),
        &[(pkt.clone(), 1, 0)],
    );
    let mut want = pkt.clone();
    vlan::push(&mut want, 3 << 13 | 100).unwrap();
    assert_eq!(want, tagged(H1, H2, 100, 3));
    assert_eq!(r[0].ports, only(2, vec![want]));
    assert_eq!(r[0].verdict, Some(Verdict::Output(2)));
    assert_eq!(r[0].outcome.drop, None);
}

#[test]
fn pop_vlan_then_output_sends_the_untagged_frame() {
    let r = run(
        &flow(vec![Action::PopVlan, Action::Output(vec![3])]),
        &[(tagged(H1, H2, 7, 5), 1, 0), (tcp(H1, H2), 1, 0)],
    );
    // Tagged: the tag goes; untagged: pop changes nothing.
    assert_eq!(r[0].ports, only(3, vec![tcp(H1, H2)]));
    assert_eq!(r[1].ports, only(3, vec![tcp(H1, H2)]));
}

#[test]
fn outputs_see_the_packet_as_it_is_at_each_step() {
    let pkt = tcp(H1, H2);
    let mut once = pkt.clone();
    vlan::push(&mut once, 42).unwrap();
    let mut twice = once.clone();
    vlan::push(&mut twice, 1 << 13 | 43).unwrap();
    let r = run(
        &flow(vec![
            Action::Output(vec![2]),
            Action::PushVlan { vid: 42, pcp: 0 },
            Action::Output(vec![3]),
            Action::PushVlan { vid: 43, pcp: 1 },
            Action::Output(vec![4]),
            Action::PopVlan,
            Action::PopVlan,
            Action::Output(vec![1]),
        ]),
        &[(pkt.clone(), 1, 0)],
    );
    assert_eq!(
        r[0].ports,
        vec![vec![pkt.clone()], vec![pkt], vec![once], vec![twice]]
    );
    assert_eq!(r[0].outcome.sent, 4);
}

#[test]
fn set_field_after_push_vlan_writes_the_moved_packet() {
    // The program reloads data/data_end after the push: the new MAC lands
    // in the tagged frame's header, and the key follows.
    let pkt = tcp(H1, H2);
    let r = run(
        &flow(vec![
            Action::PushVlan { vid: 9, pcp: 0 },
            Action::SetField(vec![SetField::EthDst(0x0200_0000_0009)]),
            Action::Output(vec![2]),
        ]),
        &[(pkt, 1, 0)],
    );
    assert_eq!(r[0].ports, only(2, vec![tagged(H1, H9, 9, 0)]));
}

#[test]
fn pushes_stop_at_the_headroom() {
    // 64 bytes of headroom take 16 tags; the 17th push fails and leaves
    // the packet alone.
    let pkt = tcp(H1, H2);
    let mut want = pkt.clone();
    for i in 0..16 {
        vlan::push(&mut want, i).unwrap();
    }
    let mut actions: Vec<_> = (0..17)
        .map(|i| Action::PushVlan { vid: i, pcp: 0 })
        .collect();
    actions.push(Action::Output(vec![2]));
    let r = run(&flow(actions), &[(pkt, 1, 0)]);
    assert_eq!(r[0].ports, only(2, vec![want]));
}

#[test]
fn flood_and_normal_use_the_ingress_port_and_the_mac_table() {
    let r = run(&flow(vec![Action::Flood]), &[(tcp(H1, H2), 2, 0)]);
    let p = tcp(H1, H2);
    assert_eq!(
        r[0].ports,
        vec![vec![p.clone()], vec![], vec![p.clone()], vec![p.clone()]]
    );
    // normal: H1 -> H2 unknown (flood); H2 -> H1 learned on port 1; then
    // H1 -> H2 learned on port 3.
    let a = tcp(H1, H2);
    let b = tcp(H2, H1);
    let r = run(
        &flow(vec![Action::Normal]),
        &[(a.clone(), 1, 0), (b.clone(), 3, 1), (a.clone(), 1, 2)],
    );
    assert_eq!(
        r[0].ports,
        vec![vec![], vec![a.clone()], vec![a.clone()], vec![a.clone()]]
    );
    assert_eq!(r[1].ports, only(1, vec![b]));
    assert_eq!(r[2].ports, only(3, vec![a]));
}

#[test]
fn meters_drop_over_their_rate() {
    // Meter 0: 1 kB burst, 1 byte per ms. 400-byte frames at the same
    // instant: two pass, then drops until the bucket refills.
    let big = Builder::new(H1, H2)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .udp(Udp::new(1, 2))
        .payload(&[7; 358])
        .build();
    assert_eq!(big.len(), 400);
    let spec = flow(vec![Action::Meter(0), Action::Output(vec![4])]);
    let r = run(
        &spec,
        &[
            (big.clone(), 1, 0),
            (big.clone(), 1, 0),
            (big.clone(), 1, 0),
            (big.clone(), 1, 400),
        ],
    );
    let passed: Vec<_> = r.iter().map(|s| s.verdict).collect();
    let meter = Some(Verdict::Drop(FlowDrop::Meter));
    assert_eq!(
        passed,
        vec![
            Some(Verdict::Output(4)),
            Some(Verdict::Output(4)),
            meter,
            Some(Verdict::Output(4))
        ]
    );
    assert_eq!(r[2].outcome.drop, Some(DropReason::Meter));
    assert_eq!(r[0].ports, only(4, vec![big.clone()]));
    assert_eq!(r[2].ports, only(4, vec![]));
    // The fast meter passes everything.
    let r = run(
        &flow(vec![Action::Meter(1), Action::Output(vec![4])]),
        &[(big.clone(), 1, 0), (big.clone(), 1, 0), (big, 1, 0)],
    );
    assert!(r.iter().all(|s| s.verdict == Some(Verdict::Output(4))));
}

#[test]
fn a_program_without_the_packet_state_faults_in_its_helper() {
    let pkt = tcp(H1, H2);
    for engine in ENGINES {
        // A mirror is a helper call (a final output would be a return code).
        let prog = load(&flow(vec![Action::Mirror(2)]), engine);
        let mut frame = Frame::from_bytes(&pkt);
        let parsed = extract(frame.data(), 1).unwrap();
        let mut ctx = vec![0u8; CTX_SIZE];
        let base = frame.buffer_mut().as_ptr() as u64;
        abi::write_packet(&mut ctx, base, frame.start(), frame.len(), &parsed);
        let r = prog.run(RunInput::ctx(frame.buffer_mut(), &mut ctx));
        assert!(
            matches!(&r, Err(crate::ebpf::RunError::HelperFault { id: 16, reason, .. })
                if reason == "flow helper called without the datapath's packet state"),
            "{engine:?}: {r:?}"
        );
    }
}

/// Maps of `ebpf/elf/testdata/maps.c`, declared by the switch in its own
/// order.
const SEEN: MapDef = MapDef {
    kind: MapKind::Hash,
    key_size: 8,
    value_size: 4,
    max_entries: 8,
};
const COUNTERS: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 8,
    max_entries: 4,
};

#[test]
fn elf_programs_keep_state_in_the_switch_maps() {
    let mut builds = vec![crate::ebpf::elf::tests::FIXTURE.to_vec()];
    builds.extend(crate::ebpf::elf::tests::fresh_build());
    for bytes in builds {
        let switch = [("seen", SEEN), ("counters", COUNTERS)];
        let section = |name: &str| {
            let mut p = elf::load(&bytes, name).unwrap();
            for m in &p.maps {
                let declared = switch.iter().find(|(n, _)| *n == m.name).map(|(_, d)| *d);
                assert_eq!(m.def, declared, "{}", m.name);
            }
            p.bind(|m| {
                switch
                    .iter()
                    .position(|(n, _)| *n == m.name)
                    .map(|i| i as u32)
            })
            .unwrap();
            p.insns
        };
        let filters = vec![section("filter/known")];
        let actions = vec![section("action/count")];
        let opts = CompileOptions {
            filters: &filters,
            actions: &actions,
        };
        // "known" (sources seen twice) to port 3; everything else is
        // counted and goes to port 2.
        let mut known = flow(vec![Action::Output(vec![3])]);
        known.filter = Some(0);
        let count = flow(vec![Action::Ebpf(0), Action::Output(vec![2])]);
        let packets = [(H1, 1), (H1, 5), (H1, 2), (H2, 3)];
        let results = ENGINES.map(|engine| {
            let maps = Arc::new(Maps::new(switch.map(|(_, d)| d)).unwrap());
            let env = flow_env(flow_registry(), maps.clone());
            let load = |spec: &FlowSpec| {
                let insns = compile_flow(spec, &opts).unwrap();
                Loaded::load(&insns, &env, engine).unwrap()
            };
            let (known, count) = (load(&known), load(&count));
            let mut dp = Dp::new();
            let sent: Vec<_> = packets
                .iter()
                .map(|&(src, port)| dp.scan(&[&known, &count], &tcp(src, H9), port, 0))
                .collect();
            (sent, maps.snapshot())
        });
        assert_eq!(results[0], results[1], "interpreter and JIT disagree");
        let (sent, maps) = &results[0];
        let to: Vec<_> = sent
            .iter()
            .map(|s| s.ports.iter().position(|p| !p.is_empty()).map(|i| i + 1))
            .collect();
        assert_eq!(to, vec![Some(2), Some(2), Some(3), Some(2)]);
        let mac = |m: [u8; 6]| {
            m.iter()
                .fold(0u64, |a, &b| a << 8 | u64::from(b))
                .to_le_bytes()
                .to_vec()
        };
        let mut seen = vec![
            (mac(H1), 2u32.to_le_bytes().to_vec()),
            (mac(H2), 1u32.to_le_bytes().to_vec()),
        ];
        seen.sort();
        assert_eq!(maps[0], seen);
        let counts: Vec<_> = maps[1]
            .iter()
            .map(|(_, v)| u64::from_le_bytes(v[..8].try_into().unwrap()))
            .collect();
        assert_eq!(counts, vec![0, 2, 0, 1]);
    }
}
