//! Benchmark workloads for the eBPF engine: each is an eBPF program, the
//! memory it runs on, and a hand-written Rust function doing the same work.
//! `flowswitch bpf bench` and the criterion bench (`benches/ebpf.rs`) both use
//! these, so their figures describe the same programs.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// One benchmark program.
pub struct Workload {
    pub name: &'static str,
    pub asm: &'static str,
    pub mem: Vec<u8>,
    /// The same computation in Rust.
    pub native: fn(&mut [u8]) -> u64,
}

/// A packet-header match of the kind the flow compiler emits: an IPv4/TCP
/// frame to 10.0.0.2 port 80, with the length checks a flow program makes.
pub const HEADER_MATCH: &str = "
    # r1 = frame, r2 = its length
    mov %r0, 0
    jlt %r2, 54, out
    ldxh %r3, [%r1+12]
    jne %r3, 0x0008, out        # eth_type 0x0800, read little-endian
    ldxb %r3, [%r1+23]
    jne %r3, 6, out             # ip_proto tcp
    ldxw %r3, [%r1+30]
    jne %r3, 0x0200000a, out    # ipv4_dst 10.0.0.2
    ldxb %r3, [%r1+14]
    and %r3, 0xf
    lsh %r3, 2                  # IHL in bytes
    mov %r4, %r1
    add %r4, %r3
    ldxh %r3, [%r4+16]
    jne %r3, 0x5000, out        # tcp_dst 80
    mov %r0, 1
out:
    exit
";

fn header_match_native(f: &mut [u8]) -> u64 {
    let f = black_box(f);
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 || f[30..34] != [10, 0, 0, 2] {
        return 0;
    }
    let ihl = ((f[14] & 0xf) as usize) * 4;
    match f.get(14 + ihl + 2..14 + ihl + 4) {
        Some([0, 80]) => 1,
        _ => 0,
    }
}

/// FNV-1a over every byte of a 1,500-byte buffer: a bounded loop whose
/// iterations depend on each other, so neither side can vectorise it.
pub const FNV_LOOP: &str = "
    # r1 = buffer, r2 = its length
    lddw %r0, 0xcbf29ce484222325
    lddw %r5, 0x100000001b3
    mov %r3, 0
    jge %r3, %r2, done
loop:
    mov %r4, %r1
    add %r4, %r3
    ldxb %r4, [%r4]
    xor %r0, %r4
    mul %r0, %r5
    add %r3, 1
    jlt %r3, %r2, loop
done:
    exit
";

fn fnv_native(buf: &mut [u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in black_box(&*buf) {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Trial division: is the number in the first 8 bytes of memory prime?
/// (The computation of the suite's prime.data, with the input in memory so
/// that neither side can fold it.)
pub const PRIME: &str = "
    ldxdw %r1, [%r1]
    mov %r0, 1
    mov %r2, 2
    jle %r1, 2, done
next:
    mov %r3, %r1
    mod %r3, %r2
    mov %r0, 0
    jeq %r3, 0, done
    mov %r0, 1
    add %r2, 1
    jlt %r2, %r1, next
done:
    exit
";

fn prime_native(mem: &mut [u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&black_box(&*mem)[..8]);
    let n = u64::from_le_bytes(b);
    let mut i = 2;
    while i < n {
        if n % i == 0 {
            return 0;
        }
        i += 1;
    }
    1
}

/// A 64-byte IPv4/TCP frame to 10.0.0.2:80.
pub fn tcp_frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f
}

/// The standard workloads.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "header-match",
            asm: HEADER_MATCH,
            mem: tcp_frame(),
            native: header_match_native,
        },
        Workload {
            name: "fnv-1500",
            asm: FNV_LOOP,
            mem: (0..1500u32).map(|i| (i * 7 + 3) as u8).collect(),
            native: fnv_native,
        },
        Workload {
            name: "prime",
            asm: PRIME,
            mem: 10_007u64.to_le_bytes().to_vec(),
            native: prime_native,
        },
    ]
}

/// Nanoseconds per call of `f`: the median of several timed batches, each
/// long enough (about 10 ms) for the clock to be precise.
pub fn ns_per_call(mut f: impl FnMut()) -> f64 {
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() >= Duration::from_millis(10) || iters >= 1 << 30 {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}
