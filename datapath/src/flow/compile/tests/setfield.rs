//! `set_field` and `dec_ttl` on random frames: the frame a program leaves
//! (and every frame it outputs on the way) must equal the model's frame
//! rebuilt from scratch, byte for byte, with every checksum right, and the
//! ctx key must equal the key extracted from that frame.

use super::frames::{random_field, Desc, L3, L4};
use super::*;
use crate::classifier::testgen::Rng;
use crate::flow::key::*;
use crate::flow::spec::SetField;
use crate::packet::{csum, extract};

#[derive(Debug, Clone)]
enum Step {
    Set(Vec<SetField>),
    Ttl,
    Out(u32),
}

/// Matches that pin (some of) the frame's own protocol fields, so that
/// both the run-time checks and the pinned paths are exercised.
fn pins(rng: &mut Rng, key: &FlowKey) -> Vec<Match> {
    let mut m = Match::any();
    if rng.below(2) == 0 {
        m.require::<2>(OFF_ETH_TYPE, u64::from(key.eth_type()), 0xffff);
    }
    if rng.below(2) == 0 {
        m.require::<1>(OFF_IP_PROTO, u64::from(key.ip_proto()), 0xff);
    }
    if rng.below(2) == 0 {
        let p = u64::from(VLAN_PRESENT);
        m.require::<2>(OFF_VLAN_TCI, u64::from(key.vlan_tci()) & p, p);
    }
    vec![m]
}

fn random_steps(rng: &mut Rng) -> Vec<Step> {
    let n = 1 + rng.below(4);
    let mut steps: Vec<Step> = (0..n)
        .map(|_| match rng.below(10) {
            0..=5 => Step::Set((0..1 + rng.below(4)).map(|_| random_field(rng)).collect()),
            6 | 7 => Step::Ttl,
            _ => Step::Out(1 + rng.below(4) as u32),
        })
        .collect();
    if steps.iter().all(|s| matches!(s, Step::Out(_))) {
        steps.push(Step::Set(vec![random_field(rng)]));
    }
    steps
}

/// Runs one case; returns whether the model changed the frame.
fn case(rng: &mut Rng, desc: Desc, steps: Vec<Step>) -> bool {
    let frame = desc.build();
    let in_port = 1 + rng.below(8) as u32;
    let ctx = ctx_for(&frame, in_port);
    let actions = steps
        .iter()
        .map(|s| match s {
            Step::Set(f) => Action::SetField(f.clone()),
            Step::Ttl => Action::DecTtl,
            Step::Out(p) => Action::Output(vec![*p]),
        })
        .collect();
    let s = spec(pins(rng, &ctx.key()), actions);
    let (p, j) = build(&s, &CompileOptions::default());
    let out = run_both(&p, &j, &frame, &ctx);

    let mut model = desc.clone();
    let mut outputs = Vec::new();
    let mut verdict = Verdict::Done;
    for st in &steps {
        match st {
            Step::Set(fields) => fields.iter().for_each(|f| model.set(f)),
            Step::Ttl => {
                if !model.dec_ttl() {
                    verdict = Verdict::Drop(DropReason::Ttl);
                    break;
                }
            }
            Step::Out(port) => outputs.push((*port, model.build())),
        }
    }
    let want = model.build();
    let show = || {
        format!(
            "frame {desc:?}\nsteps {steps:?}\nin  {}\nout {}\nwant {}\n{}",
            hex(&frame),
            hex(&out.frame),
            hex(&want),
            crate::ebpf::disasm::disassemble(&p.insns)
        )
    };
    assert_eq!(out.verdict(), Some(verdict), "{}", show());
    assert!(out.frame == want, "frame differs\n{}", show());
    if let Err(e) = csum::verify(&out.frame) {
        panic!("{e}\n{}", show());
    }
    let want_key = extract(&want, in_port).expect("parses").key;
    assert_eq!(out.key(), want_key, "ctx key\n{}", show());
    assert_eq!(out.calls.len(), outputs.len(), "{}", show());
    for (c, (port, f)) in out.calls.iter().zip(&outputs) {
        assert_eq!((c.id, c.args[0]), (helper_id::OUTPUT, u64::from(*port)));
        assert!(c.pkt == *f, "output to {port} differs\n{}", show());
    }
    want != frame
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn random_rewrites_equal_frames_rebuilt_from_scratch() {
    let mut rng = Rng::new(21);
    let cases = std::env::var("COMPILE_SETFIELD_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let mut changed = 0;
    for _ in 0..cases {
        let desc = Desc::random(&mut rng);
        let steps = random_steps(&mut rng);
        changed += usize::from(case(&mut rng, desc, steps));
    }
    assert!(changed > cases / 2, "{changed} of {cases} frames changed");
}

/// Every field on every kind of frame it applies to, one at a time, many
/// values, so that each checksum path runs with carries and zero results.
#[test]
fn each_field_on_each_protocol() {
    let mut rng = Rng::new(22);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4000 {
        let desc = Desc::random(&mut rng);
        let f = random_field(&mut rng);
        let kind = (
            std::mem::discriminant(&f),
            match &desc.l3 {
                L3::V4(_) => 4,
                L3::V6(_) => 6,
                _ => 0,
            },
            match &desc.l4 {
                L4::Tcp(_) => 1,
                L4::Udp(_) => 2 + u8::from(desc.udp_zero),
                L4::Icmp(_) => 4,
                L4::None => 0,
            },
            desc.tci.is_some(),
        );
        seen.insert(kind);
        case(&mut rng, desc, vec![Step::Set(vec![f])]);
    }
    // 13 fields x (IPv4 x 5 L4 kinds + IPv6 x 4 + other) x tagged or not.
    assert!(seen.len() > 200, "{} combinations", seen.len());
}

#[test]
fn dec_ttl_drops_at_one_and_zero() {
    let mut rng = Rng::new(23);
    let mut drops = 0;
    for ttl in [0u8, 1, 2, 3, 64, 255] {
        for v6 in [false, true] {
            let mut desc = Desc::random(&mut rng);
            desc.l3 = if v6 {
                L3::V6(
                    crate::packet::build::Ipv6::new(
                        "2001:db8::1".parse().expect("addr"),
                        "2001:db8::2".parse().expect("addr"),
                    )
                    .hop_limit(ttl),
                )
            } else {
                L3::V4(
                    crate::packet::build::Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into())
                        .ttl(ttl),
                )
            };
            if v6 {
                desc.udp_zero = false;
            }
            let frame = desc.build();
            let ctx = ctx_for(&frame, 1);
            let s = spec(
                vec![Match::any()],
                vec![Action::DecTtl, Action::Output(vec![2])],
            );
            let (p, j) = build(&s, &CompileOptions::default());
            let out = run_both(&p, &j, &frame, &ctx);
            if ttl <= 1 {
                drops += 1;
                assert_eq!(out.verdict(), Some(Verdict::Drop(DropReason::Ttl)));
                assert_eq!(out.frame, frame);
                assert!(out.calls.is_empty());
            } else {
                let mut m = desc.clone();
                assert!(m.dec_ttl());
                assert_eq!(out.verdict(), Some(Verdict::Done));
                assert_eq!(out.frame, m.build());
                assert_eq!(out.key().ip_ttl(), ttl - 1);
            }
        }
    }
    assert_eq!(drops, 4);
}

#[test]
fn udp_checksums_stay_zero_and_never_become_zero() {
    // Zero (no checksum) stays zero whatever changes.
    let mut rng = Rng::new(24);
    let mut zero_cases = 0;
    while zero_cases < 200 {
        let desc = Desc::random(&mut rng);
        if !desc.udp_zero {
            continue;
        }
        zero_cases += 1;
        let fields = vec![
            SetField::Ipv4Dst(rng.next_u64() as u32),
            SetField::UdpSrc(rng.next_u64() as u16),
        ];
        case(&mut rng, desc, vec![Step::Set(fields)]);
    }
    // A rewrite whose result sums to zero is sent as 0xffff: search for
    // source ports that make the new checksum 0 (and so 0xffff).
    let base = crate::packet::build::udp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        1000,
        53,
        b"payload!",
    );
    let mut found = 0;
    for port in 0..=u16::MAX {
        let mut d = base.clone();
        let p = extract(&d, 0).expect("parses");
        let at = usize::from(p.l4);
        d[at..at + 2].copy_from_slice(&port.to_be_bytes());
        d[at + 6..at + 8].fill(0);
        let pseudo = csum::pseudo_ipv4(0x0a00_0001, 0x0a00_0002, 17, (d.len() - at) as u16);
        let full = pseudo.bytes(&d[at..]).finish();
        if full == 0 {
            let s = spec(
                vec![Match::any()],
                vec![Action::SetField(vec![SetField::UdpSrc(port)])],
            );
            let (pr, j) = build(&s, &CompileOptions::default());
            let out = run_both(&pr, &j, &base, &ctx_for(&base, 0));
            assert_eq!(&out.frame[at + 6..at + 8], &[0xff, 0xff]);
            assert!(csum::verify(&out.frame).is_ok());
            found += 1;
        }
    }
    assert!(found >= 1);
}

#[test]
fn vlan_fields_only_touch_tagged_frames_and_keep_dei() {
    let mut rng = Rng::new(25);
    for tci in [
        None,
        Some(0x0000u16),
        Some(0x1fff),
        Some(0xf00a),
        Some(0x3064),
    ] {
        for fields in [
            vec![SetField::VlanVid(0x123)],
            vec![SetField::VlanPcp(5)],
            vec![SetField::VlanPcp(0), SetField::VlanVid(4095)],
        ] {
            let mut desc = Desc::random(&mut rng);
            desc.tci = tci;
            case(&mut rng, desc, vec![Step::Set(fields)]);
        }
    }
}

#[test]
fn packet_code_is_proven_even_for_large_actions() {
    // Every field at once, twice, plus dec_ttl, with nothing pinned: all
    // protocol paths in one program, still without a single guard.
    let all: Vec<SetField> = (0..13)
        .map(|i| match i {
            0 => SetField::EthSrc(0x0200_0000_0001),
            1 => SetField::EthDst(0x0200_0000_0002),
            2 => SetField::Ipv4Src(0x0a00_0001),
            3 => SetField::Ipv4Dst(0x0a00_0002),
            4 => SetField::Ipv6Src(1),
            5 => SetField::Ipv6Dst(2),
            6 => SetField::IpDscp(46),
            7 => SetField::TcpSrc(1),
            8 => SetField::TcpDst(2),
            9 => SetField::UdpSrc(3),
            10 => SetField::UdpDst(4),
            11 => SetField::VlanVid(5),
            _ => SetField::VlanPcp(6),
        })
        .collect();
    let s = spec(
        vec![Match::any()],
        vec![
            Action::SetField(all.clone()),
            Action::DecTtl,
            Action::SetField(all),
            Action::Output(vec![1]),
        ],
    );
    let (p, j) = build(&s, &CompileOptions::default());
    let mut rng = Rng::new(26);
    for _ in 0..200 {
        let desc = Desc::random(&mut rng);
        let frame = desc.build();
        let out = run_both(&p, &j, &frame, &ctx_for(&frame, 1));
        if out.verdict() == Some(Verdict::Done) {
            assert!(csum::verify(&out.frame).is_ok());
        }
    }
    assert!(p.insns.len() < 700, "{} slots", p.insns.len());
}

#[test]
fn bad_values_name_the_flow() {
    for f in [
        SetField::VlanVid(4096),
        SetField::VlanPcp(8),
        SetField::IpDscp(64),
        SetField::EthSrc(1 << 48),
    ] {
        let mut s = spec(vec![Match::any()], vec![Action::SetField(vec![f])]);
        s.name = "web".into();
        let e = compile_flow(&s, &CompileOptions::default()).expect_err("rejected");
        assert!(e.to_string().starts_with("flow web: set_field "), "{e}");
    }
}
