use std::sync::Arc;

use super::abi;
use super::*;
use crate::dp::mac::{MacConfig, MacTable};
use crate::dp::meter::Meters;
use crate::dp::port::{Frame, FrameBuf, FrameWindow, MemPort, Port, PortSet, VlanSet, HEADROOM};
use crate::dp::stats::WorkerCounters;
use crate::ebpf::helpers::HelperExit;
use crate::flow::compile::ctx::{
    CTX_DATA, CTX_DATA_END, CTX_L3_OFF, CTX_L4_OFF, CTX_PKT_LEN, CTX_SIZE,
};
use crate::flow::compile::{helper_id, FLOW_HELPERS};
use crate::flow::key::{FlowKey, VLAN_PRESENT};
use crate::packet::build::{self, Builder, Ipv4, Tcp, Udp};
use crate::packet::{csum, extract, ErrorKind};

const H1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const H2: [u8; 6] = [2, 0, 0, 0, 0, 2];
const H3: [u8; 6] = [2, 0, 0, 0, 0, 3];
const BCAST: [u8; 6] = [0xff; 6];
const MS: u64 = 1_000_000;

/// Four memory ports (ids 1..=4), an exact MAC table, two meters.
struct Rig {
    mems: Vec<Arc<MemPort>>,
    st: PacketState,
}

impl Rig {
    fn new() -> Self {
        Self::with_vlans(&[])
    }

    /// `vlans`: (port id, VLANs it carries).
    fn with_vlans(vlans: &[(PortId, &[u16])]) -> Self {
        let mems: Vec<_> = (1..=4)
            .map(|id| Arc::new(MemPort::new(id, format!("p{id}"))))
            .collect();
        let mut ports =
            PortSet::new(mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect()).unwrap();
        for (id, vids) in vlans {
            ports
                .set_vlans(*id, Some(VlanSet::of(vids.iter().copied()).unwrap()))
                .unwrap();
        }
        let mac = MacTable::with_seed(
            MacConfig {
                capacity: 1024,
                aging_ms: 300_000,
                refresh_ms: 0,
            },
            3,
        );
        // Meter 0: 8 kbps (1 byte per ms), 1 kB burst.
        let meters = Meters::new([(8, 1), (1_000_000, 100)]).unwrap();
        let counters = Arc::new(WorkerCounters::new(ports.len()));
        let mut st = PacketState::new(
            0,
            Arc::new(ports),
            Arc::new(mac),
            Arc::new(meters),
            counters,
        );
        st.record_outputs(true);
        Rig { mems, st }
    }

    fn port(&self, id: PortId) -> &MemPort {
        &self.mems[id as usize - 1]
    }

    /// Flushes and returns what each port (1..=4) received.
    fn sent(&mut self) -> Vec<Vec<Vec<u8>>> {
        self.st.flush();
        self.mems.iter().map(|m| m.take_tx_bytes()).collect()
    }

    /// Runs `normal` (FINAL) on `frame` from `in_port` at `ms`.
    fn normal(&mut self, frame: &[u8], in_port: PortId, ms: u64) -> Outcome {
        let mut f = Frame::from_bytes(frame);
        self.st.begin(in_port, ms * MS);
        self.st.normal(&f.to_vec(), FINAL);
        self.st.finish(&mut f, None)
    }

    /// Ports that got `frame` since the last call.
    fn receivers(&mut self, frame: &[u8]) -> Vec<PortId> {
        let sent = self.sent();
        let mut out = Vec::new();
        for (i, frames) in sent.iter().enumerate() {
            for f in frames {
                assert_eq!(f, frame);
                out.push(i as PortId + 1);
            }
        }
        out
    }
}

fn eth(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    Builder::new(src, dst)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .udp(Udp::new(1000, 2000))
        .payload(b"hello")
        .build()
}

fn tagged(src: [u8; 6], dst: [u8; 6], vid: u16) -> Vec<u8> {
    Builder::new(src, dst)
        .vlan(vid, 0)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .udp(Udp::new(1000, 2000))
        .payload(b"hello")
        .build()
}

#[test]
fn output_copies_and_final_moves() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(1, 0);
    r.st.output(f.data(), 2, 0);
    r.st.output(f.data(), 1, 0); // back out of the ingress port is allowed
    r.st.output(f.data(), 3, FINAL);
    assert_eq!(r.st.tx().queued(), 2);
    let out = r.st.finish(&mut f, None);
    assert_eq!(
        out,
        Outcome {
            sent: 3,
            drop: None
        }
    );
    assert!(f.is_empty(), "the packet's buffer was moved");
    assert_eq!(f.headroom(), HEADROOM);
    assert_eq!(r.st.tx().queued(), 3);
    let sent = r.sent();
    assert_eq!(sent[0], vec![pkt.clone()]);
    assert_eq!(sent[1], vec![pkt.clone()]);
    assert_eq!(sent[2], vec![pkt.clone()]);
    assert!(sent[3].is_empty());
    let trace = r.st.take_outputs();
    assert_eq!(
        trace.iter().map(|t| t.port).collect::<Vec<_>>(),
        vec![2, 1, 3]
    );
    assert!(trace.iter().all(|t| t.frame == pkt));
    let c = r.st.counters().port(2).unwrap();
    assert_eq!(
        (c.tx_packets.get(), c.tx_bytes.get()),
        (1, pkt.len() as u64)
    );
}

#[test]
fn unknown_or_down_ports_drop() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    r.port(3).set_up(false);
    r.st.begin(1, 0);
    r.st.output(f.data(), 9, 0);
    r.st.output(f.data(), 3, FINAL);
    let out = r.st.finish(&mut f, None);
    assert_eq!(
        out,
        Outcome {
            sent: 0,
            drop: Some(DropReason::PortDown)
        }
    );
    assert_eq!(f.data(), &pkt[..], "nothing moved");
    assert_eq!(r.st.counters().port(2).unwrap().tx_drops.get(), 1);
    assert_eq!(r.st.counters().drops(DropReason::PortDown), 1);
    // A down port among others: the packet is not a drop.
    r.st.begin(1, 0);
    r.st.output(f.data(), 3, 0);
    r.st.output(f.data(), 2, FINAL);
    assert_eq!(
        r.st.finish(&mut f, None),
        Outcome {
            sent: 1,
            drop: None
        }
    );
    // An id that does not fit a port id is unknown.
    let mut f = Frame::from_bytes(&pkt);
    let mut ctx = ctx_for(&mut f);
    r.st.begin(1, 0);
    abi::fs_output(&mut r.st, f.buffer_mut(), &mut ctx, [0, 1 << 40, 0, 0, 0]).unwrap();
    assert_eq!(r.st.sent(), 0);
    assert_eq!(r.sent()[1], vec![pkt]);
}

#[test]
fn nothing_sent_is_no_output_and_verdicts_win() {
    let mut r = Rig::new();
    let mut f = Frame::from_bytes(&eth(H1, H2));
    r.st.begin(1, 0);
    assert_eq!(r.st.finish(&mut f, None).drop, Some(DropReason::NoOutput));
    r.st.begin(1, 0);
    r.st.output(f.data(), 2, 0);
    let out = r.st.finish(&mut f, Some(DropReason::Meter));
    assert_eq!(
        out,
        Outcome {
            sent: 1,
            drop: Some(DropReason::Meter)
        }
    );
    r.st.begin(1, 0);
    assert_eq!(
        r.st.finish(&mut f, Some(DropReason::Explicit)).drop,
        Some(DropReason::Explicit)
    );
    let c = r.st.counters();
    assert_eq!(c.drops(DropReason::NoOutput), 1);
    assert_eq!(c.drops(DropReason::Meter), 1);
    assert_eq!(c.drops(DropReason::Explicit), 1);
    assert_eq!(c.drops(DropReason::Parse(ErrorKind::Ipv4)), 0);
}

#[test]
fn flood_skips_ingress_and_down_ports() {
    let mut r = Rig::new();
    let pkt = eth(H1, BCAST);
    let mut f = Frame::from_bytes(&pkt);
    r.port(4).set_up(false);
    r.st.begin(2, 0);
    r.st.flood(f.data(), FINAL);
    assert_eq!(r.st.tx().queued(), 1, "the last copy is the moved packet");
    assert_eq!(
        r.st.finish(&mut f, None),
        Outcome {
            sent: 2,
            drop: None
        }
    );
    assert_eq!(r.receivers(&pkt), vec![1, 3]);
    assert_eq!(
        r.st.take_outputs()
            .iter()
            .map(|t| t.port)
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    // From a port not in the set: every port that is up.
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(99, 0);
    r.st.flood(f.data(), 0);
    r.st.finish(&mut f, None);
    assert_eq!(r.receivers(&pkt), vec![1, 2, 3]);
    assert_eq!(f.data(), &pkt[..], "without FINAL nothing moves");
}

#[test]
fn normal_learns_and_forwards() {
    let mut r = Rig::new();
    let a = eth(H1, H2);
    // Unknown destination: flood, and learn H1 on port 1.
    assert_eq!(r.normal(&a, 1, 0).sent, 3);
    assert_eq!(r.receivers(&a), vec![2, 3, 4]);
    // H2 answers from port 2: H1 is known.
    let b = eth(H2, H1);
    assert_eq!(r.normal(&b, 2, 1).sent, 1);
    assert_eq!(r.receivers(&b), vec![1]);
    // Now H2 is known too.
    assert_eq!(r.normal(&a, 1, 2).sent, 1);
    assert_eq!(r.receivers(&a), vec![2]);
    // H2 moves to port 4.
    r.normal(&eth(H2, H3), 4, 3);
    r.sent();
    r.normal(&a, 1, 4);
    assert_eq!(r.receivers(&a), vec![4]);
    // A frame to a host on its own ingress port goes nowhere.
    let out = r.normal(&eth(H3, H2), 4, 5);
    assert_eq!(
        out,
        Outcome {
            sent: 0,
            drop: Some(DropReason::NoOutput)
        }
    );
    assert_eq!(r.receivers(&eth(H3, H2)), Vec::<PortId>::new());
    // Broadcast always floods.
    let bc = eth(H1, BCAST);
    r.normal(&bc, 1, 6);
    assert_eq!(r.receivers(&bc), vec![2, 3, 4]);
    // The table: H1 on 1, H2 on 4, H3 on 4 (all VLAN 0).
    let e: Vec<_> =
        r.st.mac_table()
            .entries(6)
            .iter()
            .map(|e| (e.vlan, e.mac, e.port))
            .collect();
    assert_eq!(
        e,
        vec![
            (0, 0x0200_0000_0001, 1),
            (0, 0x0200_0000_0002, 4),
            (0, 0x0200_0000_0003, 4)
        ]
    );
}

#[test]
fn normal_ages_entries_out() {
    let mut r = Rig::new();
    r.normal(&eth(H2, H1), 2, 0);
    r.sent();
    let a = eth(H1, H2);
    r.normal(&a, 1, 299_999);
    assert_eq!(r.receivers(&a), vec![2]);
    // H2 was last seen at 0: gone at 300 s.
    r.normal(&a, 1, 300_000);
    assert_eq!(r.receivers(&a), vec![2, 3, 4]);
}

#[test]
fn normal_never_learns_group_sources() {
    let mut r = Rig::new();
    let m = eth([0x01, 0, 0x5e, 0, 0, 1], H2);
    r.normal(&m, 3, 0);
    r.sent();
    assert!(r.st.mac_table().is_empty(0));
}

#[test]
fn normal_is_vlan_aware() {
    // Port 1 carries VLANs 10 and 20, port 2 only 10, port 3 only 20,
    // port 4 everything.
    let mut r = Rig::with_vlans(&[(1, &[10, 20]), (2, &[10]), (3, &[20])]);
    let a10 = tagged(H1, H2, 10);
    let a20 = tagged(H1, H2, 20);
    // Flooding stays in the VLAN.
    r.normal(&a10, 1, 0);
    assert_eq!(r.receivers(&a10), vec![2, 4]);
    r.normal(&a20, 1, 0);
    assert_eq!(r.receivers(&a20), vec![3, 4]);
    // H2 answers in VLAN 10 from port 2: known in VLAN 10 only.
    r.normal(&tagged(H2, H1, 10), 2, 1);
    r.sent();
    r.normal(&a10, 1, 2);
    assert_eq!(r.receivers(&a10), vec![2]);
    r.normal(&a20, 1, 2);
    assert_eq!(r.receivers(&a20), vec![3, 4]);
    // Untagged frames are VLAN 0, which no restricted port carries here.
    let u = eth(H1, H3);
    r.normal(&u, 4, 3);
    assert_eq!(r.receivers(&u), Vec::<PortId>::new());
    assert_eq!(r.st.mac_table().lookup(0, 0x0200_0000_0001, 3), Some(4));
    assert_eq!(r.st.mac_table().lookup(10, 0x0200_0000_0001, 3), Some(1));
}

#[test]
fn meter_admits_by_the_bucket() {
    let mut r = Rig::new();
    r.st.begin(1, 0);
    assert_eq!(r.st.meter(0, 600), Ok(true));
    assert_eq!(r.st.meter(0, 600), Ok(false));
    assert_eq!(r.st.meter(0, 400), Ok(true));
    r.st.begin(1, 100 * MS);
    assert_eq!(r.st.meter(0, 101), Ok(false));
    assert_eq!(r.st.meter(0, 100), Ok(true));
    assert_eq!(r.st.meter(1, 1500), Ok(true));
    assert_eq!(
        r.st.meter(2, 1),
        Err(ActionError::NoMeter { index: 2, count: 2 })
    );
    assert_eq!(r.st.meter(2, 1).unwrap_err().code(), -4);
}

#[test]
fn push_and_pop_match_the_packet_module() {
    let mut r = Rig::new();
    let frames = [
        eth(H1, H2),
        tagged(H1, H2, 7),
        build::arp_request(H1, [10, 0, 0, 1].into(), [10, 0, 0, 9].into()),
        Builder::new(H1, H2)
            .ipv4(Ipv4::new([1, 2, 3, 4].into(), [5, 6, 7, 8].into()))
            .tcp(Tcp::new(80, 443))
            .payload(&[0xaa; 100])
            .build(),
    ];
    for pkt in frames {
        r.st.begin(3, 0);
        let mut f = Frame::from_bytes(&pkt);
        let tci = (5 << 13) | 100;
        let parsed = r.st.push_vlan(&mut f, tci).unwrap();
        let mut want = pkt.clone();
        vlan::push(&mut want, tci).unwrap();
        assert_eq!(f.data(), &want[..]);
        assert_eq!(parsed, extract(&want, 3).unwrap());
        assert_eq!(parsed.key.vlan_tci(), (5 << 13) | VLAN_PRESENT | 100);
        assert_eq!(parsed.key.in_port(), 3);
        assert!(csum::verify_l3_l4(f.data()));
        assert_eq!(f.headroom(), HEADROOM - 4);
        let popped = r.st.pop_vlan(&mut f).unwrap().unwrap();
        assert_eq!(f.data(), &pkt[..]);
        assert_eq!(popped, extract(&pkt, 3).unwrap());
        assert_eq!(f.headroom(), HEADROOM);
    }
}

#[test]
fn vlan_edge_cases() {
    let mut r = Rig::new();
    r.st.begin(1, 0);
    // Untagged: pop is a no-op.
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    assert_eq!(r.st.pop_vlan(&mut f), Ok(None));
    assert_eq!(f.data(), &pkt[..]);
    // Too short to tag.
    let mut short = Frame::from_bytes(&[0; 13]);
    assert_eq!(
        r.st.push_vlan(&mut short, 1),
        Err(ActionError::Vlan(VlanError::NoEthernet { len: 13 }))
    );
    assert_eq!(short.len(), 13);
    // A fixed buffer without headroom refuses, unchanged.
    let mut buf = pkt.clone();
    let len = buf.len();
    let mut w = FrameWindow::new(&mut buf, 0, len).unwrap();
    let e = r.st.push_vlan(&mut w, 1).unwrap_err();
    assert_eq!(
        e,
        ActionError::Frame(FrameError::NoHeadroom { need: 4, have: 0 })
    );
    assert_eq!(e.code(), -2);
    assert_eq!(w.data(), &pkt[..]);
    // An owned frame grows its headroom as needed.
    let mut f = Frame::from_bytes(&pkt);
    for vid in 0..20 {
        r.st.push_vlan(&mut f, vid).unwrap();
    }
    assert_eq!(vlan::tci(f.data()), Ok(Some(19)));
    for _ in 0..20 {
        assert!(r.st.pop_vlan(&mut f).unwrap().is_some());
    }
    assert_eq!(f.data(), &pkt[..]);
    // Too long to tag.
    let mut big = Frame::from_bytes(&vec![0; crate::packet::MAX_FRAME_LEN - 3]);
    assert_eq!(
        r.st.push_vlan(&mut big, 1),
        Err(ActionError::TooLong {
            len: crate::packet::MAX_FRAME_LEN - 3
        })
    );
    // A truncated tag cannot be popped.
    let mut t = Frame::from_bytes(&tagged(H1, H2, 1)[..16]);
    assert!(matches!(
        r.st.pop_vlan(&mut t),
        Err(ActionError::Vlan(VlanError::TruncatedTag { len: 16 }))
    ));
    // A push onto a frame a custom program made malformed: the tag is
    // there, the key cannot be rebuilt.
    let mut bad = eth(H1, H2);
    bad[14] = 0x40; // IPv4 IHL 0
    let mut f = Frame::from_bytes(&bad);
    assert!(matches!(
        r.st.push_vlan(&mut f, 1),
        Err(ActionError::Reparse(_))
    ));
    assert_eq!(f.len(), bad.len() + 4);
}

#[test]
fn a_final_output_before_a_change_goes_out_as_it_was() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(1, 0);
    r.st.output(f.data(), 2, FINAL);
    r.st.push_vlan(&mut f, 30).unwrap();
    r.st.output(f.data(), 3, FINAL);
    r.st.finish(&mut f, None);
    let sent = r.sent();
    assert_eq!(sent[1], vec![pkt.clone()]);
    let mut want = pkt.clone();
    vlan::push(&mut want, 30).unwrap();
    assert_eq!(sent[2], vec![want]);
    // Two FINAL outputs in a row: both get the packet.
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(1, 0);
    r.st.output(f.data(), 2, FINAL);
    r.st.output(f.data(), 4, FINAL);
    r.st.finish(&mut f, None);
    let sent = r.sent();
    assert_eq!(sent[1], vec![pkt.clone()]);
    assert_eq!(sent[3], vec![pkt]);
}

#[test]
fn steady_state_forwarding_does_not_allocate() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut rx: Vec<Frame> = Vec::new();
    let mut allocated = 0;
    for round in 0..200 {
        for _ in 0..32 {
            let mut f = r.st.tx().pool().get();
            f.set(&pkt);
            rx.push(f);
        }
        r.st.record_outputs(false);
        for mut f in rx.drain(..) {
            r.st.begin(1, 0);
            r.st.output(f.data(), 3, 0);
            r.st.output(f.data(), 2, FINAL);
            r.st.finish(&mut f, None);
            r.st.tx().pool().put(f);
        }
        r.st.flush();
        // Captured frames leave the pool: give them back as a device
        // would.
        for m in &r.mems {
            for f in m.take_tx() {
                r.st.tx().pool().put(f);
            }
        }
        if round == 0 {
            allocated = r.st.tx().pool().allocated();
        }
    }
    assert_eq!(r.st.tx().pool().allocated(), allocated);
}

// ---- abi adapters -------------------------------------------------------

/// A flow context describing `f` (as the pipeline writes it).
fn ctx_for(f: &mut Frame) -> Vec<u8> {
    let parsed = extract(f.data(), 1).unwrap();
    let mut ctx = vec![0u8; CTX_SIZE];
    let base = f.buffer_mut().as_ptr() as u64;
    abi::write_packet(&mut ctx, base, f.start(), f.len(), &parsed);
    ctx
}

fn ctx_u64(ctx: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(ctx[off..off + 8].try_into().unwrap())
}

fn ctx_key(ctx: &[u8]) -> FlowKey {
    let mut k = FlowKey::default();
    for (i, w) in k.words.iter_mut().enumerate() {
        *w = ctx_u64(ctx, i * 8);
    }
    k
}

#[test]
fn adapters_drive_the_state() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    let mut ctx = ctx_for(&mut f);
    assert_eq!(ctx_key(&ctx), extract(&pkt, 1).unwrap().key);
    r.st.begin(1, 0);
    let any: &mut dyn std::any::Any = &mut r.st;
    let st = abi::state(Some(any)).unwrap();
    let call = |st: &mut PacketState, f: &mut Frame, ctx: &mut Vec<u8>, id, a: [u64; 5]| {
        (abi::adapter(id).unwrap())(st, f.buffer_mut(), ctx, a)
    };
    assert_eq!(
        call(st, &mut f, &mut ctx, helper_id::OUTPUT, [0, 2, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        call(st, &mut f, &mut ctx, helper_id::FLOOD, [0, 0, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        call(st, &mut f, &mut ctx, helper_id::NORMAL, [0, 0, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        call(st, &mut f, &mut ctx, helper_id::METER, [0, 1, 0, 0, 0]),
        Ok(1)
    );
    assert!(matches!(
        call(st, &mut f, &mut ctx, helper_id::METER, [0, 7, 0, 0, 0]),
        Err(HelperExit::Fault(m)) if m == "meter 7 does not exist (2 meters)"
    ));
    // output 2 + flood (2, 3, 4) + normal (unknown H2: flood 2, 3, 4).
    assert_eq!(st.sent(), 7);
    assert!(abi::adapter(5).is_none());
    let mut wrong = 5u32;
    assert!(abi::state(Some(&mut wrong)).is_err());
    assert!(abi::state(None).is_err());
}

#[test]
fn adapters_change_vlans_through_the_context() {
    let mut r = Rig::new();
    let pkt = Builder::new(H1, H2)
        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .tcp(Tcp::new(5, 6))
        .build();
    let mut f = Frame::from_bytes(&pkt);
    let mut ctx = ctx_for(&mut f);
    let base = f.buffer_mut().as_ptr() as u64;
    r.st.begin(1, 0);
    let tci = (3 << 13) | 55;
    assert_eq!(
        abi::fs_push_vlan(&mut r.st, f.buffer_mut(), &mut ctx, [0, tci, 0, 0, 0]),
        Ok(0)
    );
    // The context describes the tagged packet...
    let (start, len) = abi::read_window(&ctx, base, f.buffer().len()).unwrap();
    assert_eq!((start, len), (HEADROOM - 4, pkt.len() + 4));
    assert_eq!(ctx_u64(&ctx, CTX_DATA), base + start as u64);
    assert_eq!(ctx_u64(&ctx, CTX_DATA_END), base + (start + len) as u64);
    assert_eq!(
        u32::from_le_bytes(ctx[CTX_PKT_LEN..CTX_PKT_LEN + 4].try_into().unwrap()),
        len as u32
    );
    assert_eq!(
        u16::from_le_bytes([ctx[CTX_L3_OFF], ctx[CTX_L3_OFF + 1]]),
        18
    );
    assert_eq!(
        u16::from_le_bytes([ctx[CTX_L4_OFF], ctx[CTX_L4_OFF + 1]]),
        38
    );
    assert_eq!(ctx_key(&ctx).vlan_tci(), (3 << 13) | VLAN_PRESENT | 55);
    assert_eq!(ctx_key(&ctx).tp_dst(), 6);
    // ... and the pipeline moves the frame's window to match.
    f.set_window(start, len).unwrap();
    let mut want = pkt.clone();
    vlan::push(&mut want, tci as u16).unwrap();
    assert_eq!(f.data(), &want[..]);
    // Output from inside the program sees the tagged packet.
    abi::fs_output(&mut r.st, f.buffer_mut(), &mut ctx, [0, 4, 0, 0, 0]).unwrap();
    // Pop it again.
    assert_eq!(
        abi::fs_pop_vlan(&mut r.st, f.buffer_mut(), &mut ctx, [0; 5]),
        Ok(0)
    );
    let (start, len) = abi::read_window(&ctx, base, f.buffer().len()).unwrap();
    f.set_window(start, len).unwrap();
    assert_eq!(f.data(), &pkt[..]);
    assert_eq!(ctx_key(&ctx), extract(&pkt, 1).unwrap().key);
    // Pop of the untagged packet: 0, context unchanged.
    let before = ctx.clone();
    assert_eq!(
        abi::fs_pop_vlan(&mut r.st, f.buffer_mut(), &mut ctx, [0; 5]),
        Ok(0)
    );
    assert_eq!(ctx, before);
    r.st.finish(&mut f, None);
    assert_eq!(r.sent()[3], vec![want]);
}

#[test]
fn adapters_refuse_bad_contexts_and_report_errors() {
    let mut r = Rig::new();
    let pkt = eth(H1, H2);
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(1, 0);
    // data/data_end outside the buffer.
    let mut ctx = vec![0u8; CTX_SIZE];
    assert!(matches!(
        abi::fs_output(&mut r.st, f.buffer_mut(), &mut ctx, [0, 2, 0, 0, 0]),
        Err(HelperExit::Fault(_))
    ));
    let mut ctx = ctx_for(&mut f);
    let end = ctx_u64(&ctx, CTX_DATA_END);
    ctx[CTX_DATA_END..CTX_DATA_END + 8].copy_from_slice(&(end + (1 << 20)).to_le_bytes());
    assert!(abi::fs_flood(&mut r.st, f.buffer_mut(), &mut ctx, [0; 5]).is_err());
    // A short context.
    assert!(abi::fs_normal(&mut r.st, f.buffer_mut(), &mut [0u8; 90], [0; 5]).is_err());
    assert_eq!(r.st.sent(), 0);
    // No headroom: the helper returns -2 and changes nothing.
    let mut buf = pkt.clone();
    let mut ctx = vec![0u8; CTX_SIZE];
    let parsed = extract(&buf, 1).unwrap();
    abi::write_packet(&mut ctx, buf.as_ptr() as u64, 0, buf.len(), &parsed);
    let before = ctx.clone();
    assert_eq!(
        abi::fs_push_vlan(&mut r.st, &mut buf, &mut ctx, [0, 1, 0, 0, 0]),
        Ok(-2i64 as u64)
    );
    assert_eq!(ctx, before);
    assert_eq!(buf, pkt);
    // A packet that no longer parses after the push: a fault.
    let mut bad = eth(H1, H2);
    bad[14] = 0x40;
    let mut f = Frame::from_bytes(&bad);
    let mut ctx = vec![0u8; CTX_SIZE];
    let base = f.buffer_mut().as_ptr() as u64;
    abi::write_packet(&mut ctx, base, f.start(), f.len(), &Parsed::default());
    assert!(matches!(
        abi::fs_push_vlan(&mut r.st, f.buffer_mut(), &mut ctx, [0, 1, 0, 0, 0]),
        Err(HelperExit::Fault(m)) if m.starts_with("frame does not parse after the tag change")
    ));
}

#[test]
fn helper_table() {
    let ids: Vec<_> = FLOW_HELPERS.iter().map(|h| h.id).collect();
    assert_eq!(ids, (16..=21).collect::<Vec<_>>());
    for h in FLOW_HELPERS {
        assert!(abi::adapter(h.id).is_some());
        assert_eq!(h.changes_packet, h.name.ends_with("_vlan"));
    }
}

#[test]
fn ports_and_meters_can_change() {
    let mut r = Rig::new();
    let pkt = eth(H1, BCAST);
    let only = Arc::new(MemPort::new(7, "p7"));
    let ports = PortSet::new(vec![only.clone() as Arc<dyn Port>]).unwrap();
    let counters = Arc::new(WorkerCounters::new(ports.len()));
    r.st.set_ports(Arc::new(ports), counters);
    r.st.set_meters(Arc::new(Meters::new([(8, 1)]).unwrap()));
    let mut f = Frame::from_bytes(&pkt);
    r.st.begin(1, 0);
    r.st.flood(f.data(), FINAL);
    assert_eq!(
        r.st.meter(1, 1),
        Err(ActionError::NoMeter { index: 1, count: 1 })
    );
    assert_eq!(r.st.finish(&mut f, None).sent, 1);
    r.st.flush();
    assert_eq!(only.take_tx_bytes(), vec![pkt]);
    assert!(r.mems.iter().all(|m| m.take_tx().is_empty()));
}

#[test]
fn offload_metadata_follows_tags_into_copies_and_the_packet() {
    use crate::packet::vnet::{Gso, VnetHdr, F_NEEDS_CSUM};
    let mut rig = Rig::new();
    let tso = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso: Gso::Tcp4,
        ecn: false,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut f = Frame::from_bytes(&build::tcp4(
        H1,
        H2,
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        1,
        2,
        0x10,
        &[7; 100],
    ));
    rig.st.begin(1, 0);
    rig.st.set_offload(tso);
    rig.st.push_vlan(&mut f, 10).unwrap();
    // A copy to port 3 carries the shifted metadata...
    rig.st.output(&f.to_vec(), 3, 0);
    rig.st.pop_vlan(&mut f).unwrap();
    // ...and the packet itself, moved to port 2, the original one.
    rig.st.output(&f.to_vec(), 2, FINAL);
    rig.st.finish(&mut f, None);
    rig.st.flush();
    let to3 = rig.port(3).take_tx();
    let to2 = rig.port(2).take_tx();
    assert_eq!((to3.len(), to2.len()), (1, 1));
    assert_eq!(to3[0].offload().csum_start, 38);
    assert_eq!(to3[0].offload().hdr_len, 58);
    assert_eq!(to2[0].offload(), tso);
    // The next packet starts without metadata.
    rig.st.begin(1, 0);
    assert_eq!(rig.st.offload(), VnetHdr::default());
}
