//! Criterion benchmarks of per-packet work in `packet`: flow-key extraction
//! of typical frames (the 64-byte TCP frame is the pipeline benchmark's), and
//! the checksum helpers the actions use.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datapath::flow::key::tcp_flag;
use datapath::packet::build::{self, Builder, Ipv6, Ipv6Ext, Udp};
use datapath::packet::{csum, extract};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let tcp64 = build::tcp4(
        A,
        B,
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        40000,
        80,
        tcp_flag::ACK,
        &[0; 10],
    );
    assert_eq!(tcp64.len(), 64);
    let mut tcp_vlan = tcp64.clone();
    datapath::packet::vlan::push(&mut tcp_vlan, 100).expect("tags");
    let ip6 = || {
        Ipv6::new(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    };
    vec![
        ("tcp4-64", tcp64),
        ("tcp4-vlan", tcp_vlan),
        (
            "udp4",
            build::udp4(
                A,
                B,
                [10, 0, 0, 1].into(),
                [10, 0, 0, 2].into(),
                53,
                53,
                &[0; 18],
            ),
        ),
        (
            "tcp6",
            build::tcp6(
                A,
                B,
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                1,
                2,
                tcp_flag::SYN,
                b"",
            ),
        ),
        (
            "udp6-2ext",
            Builder::new(A, B)
                .ipv6(
                    ip6()
                        .ext(Ipv6Ext::HopByHop(vec![]))
                        .ext(Ipv6Ext::DestOpts(vec![])),
                )
                .udp(Udp::new(1, 2))
                .build(),
        ),
        (
            "arp",
            build::arp_request(A, [10, 0, 0, 1].into(), [10, 0, 0, 2].into()),
        ),
        (
            "malformed-ipv4",
            build::tcp4(A, B, [1, 1, 1, 1].into(), [2, 2, 2, 2].into(), 1, 2, 0, b"")[..40]
                .to_vec(),
        ),
    ]
}

fn extraction(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        g.bench_function(name, |b| {
            b.iter(|| black_box(extract(black_box(&frame), black_box(3))).is_ok())
        });
    }
    g.finish();
}

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("csum");
    g.bench_function("update32", |b| {
        b.iter(|| {
            csum::update32(
                black_box(0x1234),
                black_box(0x0a00_0001),
                black_box(0xc0a8_0001),
            )
        })
    });
    g.bench_function("update128", |b| {
        b.iter(|| csum::update128(black_box(0x1234), black_box(1), black_box(u128::MAX - 7)))
    });
    let data = vec![0x5au8; 1500];
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("full-1500", |b| b.iter(|| csum::checksum(black_box(&data))));
    g.finish();
}

criterion_group!(benches, extraction, checksums);
criterion_main!(benches);
