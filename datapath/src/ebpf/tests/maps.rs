//! Maps on both engines: lookups, in-place and atomic updates of values,
//! the update/delete helpers and their errors, map values as keys, the
//! run-time check of map value accesses, and concurrent workers.

use super::*;
use crate::ebpf::helpers::HelperRegistry;
use crate::ebpf::maps::{MapDef, MapKind, Maps};
use crate::ebpf::vm::{Entry, Region, DEFAULT_BUDGET};
use crate::ebpf::{MemAccess, Op};

/// Map 0: array of 4 × 16 bytes. Map 1: hash, 8-byte keys, 12-byte
/// values, 3 entries.
fn env() -> Arc<ProgEnv> {
    let maps = Maps::new([
        MapDef {
            kind: MapKind::Array,
            key_size: 4,
            value_size: 16,
            max_entries: 4,
        },
        MapDef {
            kind: MapKind::Hash,
            key_size: 8,
            value_size: 12,
            max_entries: 3,
        },
    ])
    .unwrap();
    Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: HelperRegistry::with_maps(),
        budget: DEFAULT_BUDGET,
        maps: Arc::new(maps),
    })
}

type Snapshot = Vec<Vec<(Vec<u8>, Vec<u8>)>>;

/// Runs `steps` (program index, packet) in order on each engine, each with
/// a fresh set of maps; checks that r0s, packets and final map contents
/// agree, and returns the r0s and the contents.
fn run_steps(progs: &[&str], steps: &[(usize, Vec<u8>)]) -> (Vec<Result<u64, RunError>>, Snapshot) {
    let one = |jit: bool| {
        let env = env();
        let loaded: Vec<_> = progs
            .iter()
            .map(|src| {
                let p = load(src, &env);
                let j = jit::compile(&p).unwrap();
                (p, j)
            })
            .collect();
        let mut r0s = Vec::new();
        let mut pkts = Vec::new();
        for (i, pkt) in steps {
            let (p, j) = &loaded[*i];
            let mut pkt = pkt.clone();
            r0s.push(if jit {
                j.run(RunInput::mem(&mut pkt))
            } else {
                interp::run(p, RunInput::mem(&mut pkt))
            });
            pkts.push(pkt);
        }
        (r0s, pkts, env.maps.snapshot())
    };
    let a = one(false);
    let b = one(true);
    assert_eq!(a, b, "interpreter and JIT disagree");
    (a.0, a.2)
}

/// Counts packets per `pkt[0] & 3` in map 0 (atomic add at +0), stores
/// the packet length at +8; returns the new count.
const COUNT: &str = "mov %r6, %r1\nmov %r7, %r2\nmov %r0, 0\njeq %r7, 0, out\n\
    ldxb %r3, [%r6]\nand %r3, 3\nstxw [%r10-4], %r3\n\
    lddw %r1, map 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
    jeq %r0, 0, out\nmov %r1, 1\nlock fetch add [%r0], %r1\nadd %r1, 1\n\
    stxdw [%r0+8], %r7\nmov %r0, %r1\nout:\nexit";

fn le(v: u64, n: usize) -> Vec<u8> {
    v.to_le_bytes()[..n].to_vec()
}

#[test]
fn array_values_are_updated_in_place() {
    let steps: Vec<_> = [5u8, 1, 5, 9, 2, 5]
        .iter()
        .enumerate()
        .map(|(i, &b)| (0, vec![b; 1 + i]))
        .collect();
    let (r0s, maps) = run_steps(&[COUNT], &steps);
    assert_eq!(r0s, vec![Ok(1), Ok(2), Ok(3), Ok(4), Ok(1), Ok(5)]);
    let value = |count: u64, len: u64| [le(count, 8), le(len, 8)].concat();
    assert_eq!(
        maps[0],
        vec![
            (le(0, 4), vec![0; 16]),
            (le(1, 4), value(5, 6)),
            (le(2, 4), value(1, 5)),
            (le(3, 4), vec![0; 16]),
        ]
    );
}

/// Map 1 (hash): the key is pkt[0..8]; `pkt[8]` selects the operation:
/// 0 update with flags `pkt[9]` and value pkt[0..12], 1 lookup (value
/// bytes 8..12 or 0xdead), 2 delete. Returns the helper's result.
const HASH_OPS: &str = "mov %r6, %r1\nmov %r0, 0xdead\njlt %r2, 12, out\n\
    ldxdw %r3, [%r6]\nstxdw [%r10-8], %r3\nldxdw %r3, [%r6+4]\nstxdw [%r10-16], %r3\n\
    ldxdw %r3, [%r6]\nstxdw [%r10-24], %r3\n\
    lddw %r1, map 1\nmov %r2, %r10\nadd %r2, -8\nldxb %r7, [%r6+8]\n\
    jeq %r7, 1, lookup\njeq %r7, 2, delete\n\
    mov %r3, %r10\nadd %r3, -24\nldxb %r4, [%r6+9]\ncall 2\nexit\n\
    lookup:\ncall 1\njeq %r0, 0, none\nldxw %r0, [%r0+8]\nexit\n\
    none:\nmov %r0, 0xdead\nexit\n\
    delete:\ncall 3\nout:\nexit";

fn op(key: u8, op: u8, flags: u8) -> Vec<u8> {
    let mut p = vec![key; 12];
    p[8] = op;
    p[9] = flags;
    p
}

#[test]
fn hash_updates_lookups_and_deletes_with_their_errors() {
    const ENOENT: u64 = -2i64 as u64;
    const EEXIST: u64 = -17i64 as u64;
    const E2BIG: u64 = -7i64 as u64;
    const EINVAL: u64 = -22i64 as u64;
    let steps: Vec<_> = [
        op(1, 1, 0), // lookup: none
        op(1, 0, 2), // update EXIST: none
        op(1, 0, 1), // NOEXIST: inserted
        op(1, 0, 1), // NOEXIST again
        op(1, 1, 0), // lookup
        op(2, 0, 0),
        op(3, 0, 0),
        op(4, 0, 0), // full
        op(2, 2, 0), // delete
        op(2, 2, 0), // delete again
        op(4, 0, 7), // bad flags
        op(4, 0, 0), // room now
        op(4, 1, 0),
    ]
    .into_iter()
    .map(|p| (0, p))
    .collect();
    let (r0s, maps) = run_steps(&[HASH_OPS], &steps);
    assert_eq!(
        r0s,
        [
            0xdead,
            ENOENT,
            0,
            EEXIST,
            0x0101_0101,
            0,
            0,
            E2BIG,
            0,
            ENOENT,
            EINVAL,
            0,
            0x0404_0404
        ]
        .map(Ok)
        .to_vec()
    );
    // The value stored is the 12 bytes at r10-24: pkt[0..8] then pkt[4..8],
    // all the key's byte.
    assert_eq!(
        maps[1],
        vec![
            (vec![1; 8], vec![1; 12]),
            (vec![3; 8], vec![3; 12]),
            (vec![4; 8], vec![4; 12]),
        ]
    );
}

#[test]
fn map_values_serve_as_keys_and_values() {
    // Array value 2 (16 bytes) is written from the packet, then used as
    // map 1's key (its first 8 bytes) and value (bytes 4..16).
    let prog = "mov %r6, %r1\nmov %r0, 1\njlt %r2, 16, out\nstw [%r10-4], 2\n\
        lddw %r1, map 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r7, %r0\njeq %r0, 0, out\n\
        ldxdw %r3, [%r6]\nstxdw [%r7], %r3\nldxdw %r3, [%r6+8]\nstxdw [%r7+8], %r3\n\
        lddw %r1, map 1\nmov %r2, %r7\nmov %r3, %r7\nadd %r3, 4\nmov %r4, 0\ncall 2\nout:\nexit";
    let pkt: Vec<u8> = (1..=16).collect();
    let (r0s, maps) = run_steps(&[prog], &[(0, pkt.clone())]);
    assert_eq!(r0s, vec![Ok(0)]);
    assert_eq!(maps[0][2], (le(2, 4), pkt.clone()));
    assert_eq!(maps[1], vec![(pkt[..8].to_vec(), pkt[4..].to_vec())]);
    // An array index out of range has no value.
    let found = |i: u32| {
        format!(
            "stw [%r10-4], {i}\nlddw %r1, map 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
             mov %r1, 0\njeq %r0, 0, +1\nmov %r1, 1\nmov %r0, %r1\nexit"
        )
    };
    let (r0s, _) = run_steps(&[&found(3), &found(4)], &[(0, vec![]), (1, vec![])]);
    assert_eq!(r0s, vec![Ok(1), Ok(0)]);
}

#[test]
fn map_value_accesses_are_checked_when_not_proven() {
    // The verifier proves every map value access; one marked for a
    // run-time check (as a hand-built program may) is checked against the
    // map's storage in both engines: 4 values of 16 bytes.
    let env = env();
    let src = "stw [%r10-4], 3\nlddw %r1, map 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
               jeq %r0, 0, out\nldxdw %r0, [%r0+8]\nout:\nexit";
    let mut p = load(src, &env);
    let pc = 7;
    assert_eq!(
        p.access[pc],
        Some(MemAccess {
            region: Region::Map(0),
            guard: false
        })
    );
    let ldx = |off| Op::Ldx {
        size: 8,
        signed: false,
        dst: 0,
        src: 0,
        off,
    };
    p.access[pc] = Some(MemAccess {
        region: Region::Map(0),
        guard: true,
    });
    for (off, want) in [
        (8, Ok(0)),
        (16, Err(48 + 16)),
        (-48, Ok(0)),
        (-49, Err(-1)),
        (9, Err(48 + 9)),
    ] {
        let mut q = p.clone();
        q.ops[pc] = Some(ldx(off));
        let want = want.map_err(|offset| RunError::OutOfBounds {
            pc,
            region: Region::Map(0),
            offset,
            size: 8,
        });
        let j = jit::compile(&q).unwrap();
        assert_eq!(interp::run(&q, RunInput::mem(&mut [])), want, "off {off}");
        assert_eq!(j.run(RunInput::mem(&mut [])), want, "off {off}");
    }
}

#[test]
fn workers_share_maps() {
    // Four threads run the counting program (two on each engine) on one
    // set of maps: the atomic adds lose nothing.
    let env = env();
    let p = load(COUNT, &env);
    let j = Arc::new(jit::compile(&p).unwrap());
    let p = Arc::new(p);
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let (p, j) = (p.clone(), j.clone());
            std::thread::spawn(move || {
                for i in 0..5000u32 {
                    let mut pkt = [(i % 2) as u8, 0, 0];
                    let r = if t % 2 == 0 {
                        j.run(RunInput::mem(&mut pkt))
                    } else {
                        interp::run(&p, RunInput::mem(&mut pkt))
                    };
                    assert!(r.is_ok());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = env.maps.get(0).unwrap();
    assert_eq!(m.get(&le(0, 4)).unwrap()[..8], le(10_000, 8)[..]);
    assert_eq!(m.get(&le(1, 4)).unwrap()[..8], le(10_000, 8)[..]);
    assert_eq!(m.get(&le(1, 4)).unwrap()[8..], le(3, 8)[..]);
}
