//! Random eBPF programs for differential testing and fuzzing.
//!
//! [`generate`] builds programs that the verifier is meant to accept: every
//! register is written before it is read, the stack is initialised before it
//! is loaded, jumps go forward except in counted loops, and the packet is
//! reached only through a pointer kept in r9. Inside those rules everything is
//! random: all ALU operations and widths with edge-case immediates, byte
//! swaps, sign-extending moves, every jump condition, loads and stores of
//! every width to the stack and to the packet (at offsets that may fall
//! outside it, to exercise the run-time guards), atomics, helper calls and a
//! bpf-to-bpf call. [`generate_with_maps`] adds map lookups (with loads,
//! stores and atomics on the values found), updates and deletes on the maps
//! of [`map_env`].
//!
//! The randomness comes from an [`Entropy`] source: a seeded PRNG for tests,
//! or the fuzzer's bytes.

use std::sync::Arc;

use super::helpers::HelperRegistry;
use super::insn::{encode, AluOp, AtomicOp, Cond, EndKind, Insn, Op, Src, LDDW_MAP};
use super::maps::{MapDef, MapKind, Maps};
use super::vm::{Entry, DEFAULT_BUDGET};
use super::ProgEnv;

/// A source of random numbers.
pub trait Entropy {
    fn next_u64(&mut self) -> u64;

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// SplitMix64: a small, fast, seedable generator.
pub struct SplitMix(pub u64);

impl Entropy for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Draws numbers from a byte string (a fuzzer's input); zeros once it is used up.
pub struct ByteSource<'a>(pub &'a [u8]);

impl Entropy for ByteSource<'_> {
    fn next_u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }
}

/// Registers the body may use as scalars (r1 is clobbered by calls, r9 holds
/// the packet pointer, r10 is the frame pointer).
const SCALARS: [u8; 8] = [0, 2, 3, 4, 5, 6, 7, 8];
/// Scalars a loop body may touch (r7 is the loop counter).
const LOOP_SCALARS: [u8; 6] = [0, 2, 3, 4, 5, 6];
/// Bytes of stack the prologue initialises, below r10.
const STACK_INIT: i16 = 64;
/// The packet pointer.
const PKT: u8 = 9;

/// One generated instruction whose jump target (if any) is an item index.
enum Item {
    Op(Op),
    /// Conditional jump to the item `target`.
    Jmp {
        wide: bool,
        cond: Cond,
        dst: u8,
        src: Src,
        target: usize,
    },
    /// Backward conditional jump to the item `target` (a loop's back edge).
    Back {
        dst: u8,
        target: usize,
    },
    /// Call of the subprogram placed after the main body.
    CallSub,
}

fn imm(e: &mut impl Entropy) -> i32 {
    match e.below(10) {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => i32::MIN,
        4 => i32::MAX,
        5 => *e.pick(&[2, 3, 7, 8, 16, 31, 32, 63, 64, 255, 0x8000, 0xffff]),
        6 => -(e.below(64) as i32),
        _ => e.next_u64() as i32,
    }
}

fn alu(e: &mut impl Entropy, regs: &[u8]) -> Op {
    let dst = *e.pick(regs);
    let wide = e.chance(60);
    match e.below(20) {
        0 => Op::Neg { wide, dst },
        1 => {
            let kind = *e.pick(&[EndKind::Le, EndKind::Be, EndKind::Swap]);
            Op::End {
                kind,
                bits: *e.pick(&[16, 32, 64]),
                dst,
            }
        }
        2 => {
            let bits = if wide {
                *e.pick(&[8, 16, 32])
            } else {
                *e.pick(&[8, 16])
            };
            Op::Alu {
                wide,
                op: AluOp::MovSx(bits),
                dst,
                src: Src::Reg(*e.pick(regs)),
            }
        }
        _ => {
            let op = *e.pick(&AluOp::BINARY);
            let src = if e.chance(50) {
                Src::Reg(*e.pick(regs))
            } else {
                Src::Imm(imm(e))
            };
            Op::Alu { wide, op, dst, src }
        }
    }
}

fn size(e: &mut impl Entropy) -> u8 {
    *e.pick(&[1, 2, 4, 8])
}

/// A stack offset inside the initialised area, aligned to `size`.
fn stack_off(e: &mut impl Entropy, size: u8) -> i16 {
    let slots = (STACK_INIT as u64) / size as u64;
    -((e.below(slots) as i16 + 1) * size as i16)
}

fn mem_op(e: &mut impl Entropy, regs: &[u8], pkt_len: usize) -> Vec<Op> {
    let sz = size(e);
    let reg = *e.pick(regs);
    match e.below(9) {
        0 => vec![Op::Ldx {
            size: sz,
            signed: sz < 8 && e.chance(30),
            dst: reg,
            src: 10,
            off: stack_off(e, sz),
        }],
        1 => vec![Op::Stx {
            size: sz,
            dst: 10,
            src: reg,
            off: stack_off(e, sz),
        }],
        2 => vec![Op::St {
            size: sz,
            dst: 10,
            off: stack_off(e, sz),
            imm: imm(e),
        }],
        3 => {
            // Packet load at a constant offset that may fall outside the packet.
            let off = e.below(pkt_len as u64 + 12) as i16 - 4;
            vec![Op::Ldx {
                size: sz,
                signed: sz < 8 && e.chance(30),
                dst: reg,
                src: PKT,
                off,
            }]
        }
        4 => {
            let off = e.below(pkt_len as u64 + 12) as i16 - 4;
            if e.chance(50) {
                vec![Op::Stx {
                    size: sz,
                    dst: PKT,
                    src: reg,
                    off,
                }]
            } else {
                vec![Op::St {
                    size: sz,
                    dst: PKT,
                    off,
                    imm: imm(e),
                }]
            }
        }
        5 => {
            // Packet access at a bounded variable offset through a copy of r9.
            let idx = *e.pick(regs);
            let tmp = if reg == idx { 0 } else { reg };
            let tmp = if tmp == idx { 2 } else { tmp };
            vec![
                Op::Alu {
                    wide: true,
                    op: AluOp::And,
                    dst: idx,
                    src: Src::Imm(*e.pick(&[7, 31, 63, 127])),
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Mov,
                    dst: tmp,
                    src: Src::Reg(PKT),
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Add,
                    dst: tmp,
                    src: Src::Reg(idx),
                },
                Op::Ldx {
                    size: sz,
                    signed: false,
                    dst: tmp,
                    src: tmp,
                    off: 0,
                },
            ]
        }
        6 => {
            // Variable stack offset: r10 - 64 + (idx & 7) * 8 style.
            let idx = *e.pick(regs);
            let tmp = if reg == idx { 0 } else { reg };
            let tmp = if tmp == idx { 2 } else { tmp };
            vec![
                Op::Alu {
                    wide: true,
                    op: AluOp::And,
                    dst: idx,
                    src: Src::Imm(7),
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Lsh,
                    dst: idx,
                    src: Src::Imm(3),
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Mov,
                    dst: tmp,
                    src: Src::Reg(10),
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Add,
                    dst: tmp,
                    src: Src::Reg(idx),
                },
                Op::Ldx {
                    size: 8,
                    signed: false,
                    dst: tmp,
                    src: tmp,
                    off: -STACK_INIT,
                },
            ]
        }
        _ => {
            let asz = *e.pick(&[4u8, 8]);
            let op = *e.pick(&[
                AtomicOp::Add,
                AtomicOp::Or,
                AtomicOp::And,
                AtomicOp::Xor,
                AtomicOp::Xchg,
                AtomicOp::CmpXchg,
            ]);
            let fetch = matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg) || e.chance(50);
            let src = if op == AtomicOp::CmpXchg && reg == 0 {
                2
            } else {
                reg
            };
            // Atomics only where alignment is provable (the verifier refuses
            // them on packet memory).
            let (dst, off) = (10, stack_off(e, asz));
            vec![Op::Atomic {
                size: asz,
                op,
                fetch,
                dst,
                src,
                off,
            }]
        }
    }
}

fn cond(e: &mut impl Entropy) -> Cond {
    *e.pick(&Cond::ALL)
}

fn mov_imm(dst: u8, v: i32) -> Op {
    Op::Alu {
        wide: true,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(v),
    }
}

/// A program the verifier should accept, for a packet of `pkt_len` bytes.
pub fn generate(e: &mut impl Entropy, pkt_len: usize) -> Vec<Insn> {
    let body_len = 4 + e.below(40) as usize;
    generate_sized(e, pkt_len, body_len)
}

/// Like [`generate`], with `body_len` random steps (each one to a few instructions).
pub fn generate_sized(e: &mut impl Entropy, pkt_len: usize, body_len: usize) -> Vec<Insn> {
    gen(e, pkt_len, body_len, false)
}

/// Like [`generate`], also using the maps of [`map_env`].
pub fn generate_with_maps(e: &mut impl Entropy, pkt_len: usize) -> Vec<Insn> {
    let body_len = 4 + e.below(40) as usize;
    gen(e, pkt_len, body_len, true)
}

/// Map 0 of [`map_env`]: an array of 4 values of 16 bytes.
pub const MAP_ARRAY: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 16,
    max_entries: 4,
};
/// Map 1 of [`map_env`]: a hash of 8-byte keys and 16-byte values, 3 entries
/// (fewer than the generated keys, so it fills up).
pub const MAP_HASH: MapDef = MapDef {
    kind: MapKind::Hash,
    key_size: 8,
    value_size: 16,
    max_entries: 3,
};

/// The environment of [`generate_with_maps`] programs: packet and length,
/// the standard and map helpers, and fresh maps [`MAP_ARRAY`] and
/// [`MAP_HASH`].
pub fn map_env() -> Arc<ProgEnv> {
    let maps = Maps::new([MAP_ARRAY, MAP_HASH]).unwrap_or_default();
    Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: HelperRegistry::with_maps(),
        budget: DEFAULT_BUDGET,
        maps: Arc::new(maps),
    })
}

/// Stack offsets of a map key (8 bytes) and value (16 bytes) inside the
/// initialised area.
const KEY_OFF: i16 = -8;
const VALUE_OFF: i16 = -32;

fn mov_reg(dst: u8, src: u8) -> Op {
    Op::Alu {
        wide: true,
        op: AluOp::Mov,
        dst,
        src: Src::Reg(src),
    }
}

/// r1 = map `map`'s handle, r2 = the key (built from a scalar, 0..=3 so
/// that keys repeat) on the stack.
fn map_key(e: &mut impl Entropy, map: u64, items: &mut Vec<Item>) {
    let k = *e.pick(&SCALARS);
    items.push(Item::Op(mov_reg(1, k)));
    items.push(Item::Op(Op::Alu {
        wide: true,
        op: AluOp::And,
        dst: 1,
        src: Src::Imm(3),
    }));
    items.push(Item::Op(Op::Stx {
        size: if map == 0 { 4 } else { 8 },
        dst: 10,
        src: 1,
        off: KEY_OFF,
    }));
    items.push(Item::Op(Op::Lddw {
        dst: 1,
        kind: LDDW_MAP,
        imm: map,
    }));
    items.push(Item::Op(mov_reg(2, 10)));
    items.push(Item::Op(Op::Alu {
        wide: true,
        op: AluOp::Add,
        dst: 2,
        src: Src::Imm(i32::from(KEY_OFF)),
    }));
}

/// A map operation: a lookup whose value (if found) gets a few loads,
/// stores and atomics, an update or a delete. Leaves r0 a scalar and
/// r1..r5 refilled.
fn map_op(e: &mut impl Entropy, items: &mut Vec<Item>) {
    let map = e.below(2);
    map_key(e, map, items);
    match e.below(4) {
        0 | 1 => {
            items.push(Item::Op(Op::Call { helper: 1 }));
            let n = 1 + e.below(4) as usize;
            // if r0 == 0 skip the accesses.
            let skip = items.len();
            items.push(Item::Jmp {
                wide: true,
                cond: Cond::Eq,
                dst: 0,
                src: Src::Imm(0),
                target: usize::MAX,
            });
            for _ in 0..n {
                items.push(Item::Op(value_access(e)));
            }
            let after = items.len();
            if let Some(Item::Jmp { target, .. }) = items.get_mut(skip) {
                *target = after;
            }
            items.push(Item::Op(mov_imm(0, imm(e))));
        }
        2 => {
            items.push(Item::Op(mov_reg(3, 10)));
            items.push(Item::Op(Op::Alu {
                wide: true,
                op: AluOp::Add,
                dst: 3,
                src: Src::Imm(i32::from(VALUE_OFF)),
            }));
            // Flags 0..=3 (3 is invalid).
            items.push(Item::Op(mov_imm(4, e.below(4) as i32)));
            items.push(Item::Op(Op::Call { helper: 2 }));
        }
        _ => items.push(Item::Op(Op::Call { helper: 3 })),
    }
    for r in 1..=5 {
        items.push(Item::Op(mov_imm(r, imm(e))));
    }
}

/// A load, store or atomic on the 16-byte map value r0 points to.
fn value_access(e: &mut impl Entropy) -> Op {
    // r1..r5 are clobbered by the lookup; r6..r8 hold scalars.
    let reg = *e.pick(&[6u8, 7, 8]);
    let sz = size(e);
    let off = (e.below(16 / u64::from(sz)) * u64::from(sz)) as i16;
    match e.below(4) {
        0 => Op::Ldx {
            size: sz,
            signed: sz < 8 && e.chance(30),
            dst: reg,
            src: 0,
            off,
        },
        1 => Op::Stx {
            size: sz,
            dst: 0,
            src: reg,
            off,
        },
        2 => Op::St {
            size: sz,
            dst: 0,
            off,
            imm: imm(e),
        },
        _ => {
            let asz = *e.pick(&[4u8, 8]);
            let op = *e.pick(&[
                AtomicOp::Add,
                AtomicOp::Or,
                AtomicOp::And,
                AtomicOp::Xor,
                AtomicOp::Xchg,
            ]);
            Op::Atomic {
                size: asz,
                op,
                fetch: op == AtomicOp::Xchg || e.chance(50),
                dst: 0,
                src: reg,
                off: (e.below(16 / u64::from(asz)) * u64::from(asz)) as i16,
            }
        }
    }
}

fn gen(e: &mut impl Entropy, pkt_len: usize, body_len: usize, maps: bool) -> Vec<Insn> {
    let mut items: Vec<Item> = Vec::new();
    // Prologue: keep the packet pointer, give every scalar a value, fill the stack.
    items.push(Item::Op(Op::Alu {
        wide: true,
        op: AluOp::Mov,
        dst: PKT,
        src: Src::Reg(1),
    }));
    for &r in &SCALARS {
        if r == 2 && e.chance(50) {
            continue; // keep the packet length
        }
        items.push(Item::Op(mov_imm(r, imm(e))));
    }
    for k in 1..=(STACK_INIT / 8) {
        items.push(Item::Op(Op::St {
            size: 8,
            dst: 10,
            off: -8 * k,
            imm: imm(e),
        }));
    }
    let use_sub = e.chance(20);
    // Forward jumps collected as (item index, target body position).
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for pos in 0..body_len {
        // Resolve jumps that target this position.
        let here = items.len();
        for &(at, tpos) in &pending {
            if tpos == pos {
                if let Item::Jmp { target, .. } = &mut items[at] {
                    *target = here;
                }
            }
        }
        if maps && e.chance(20) {
            map_op(e, &mut items);
            continue;
        }
        match e.below(16) {
            0..=6 => items.push(Item::Op(alu(e, &SCALARS))),
            7..=9 => {
                for op in mem_op(e, &SCALARS, pkt_len) {
                    items.push(Item::Op(op));
                }
            }
            10 | 11 => {
                let tpos = pos + 1 + e.below((body_len - pos) as u64) as usize;
                let src = if e.chance(50) {
                    Src::Reg(*e.pick(&SCALARS))
                } else {
                    Src::Imm(imm(e))
                };
                pending.push((items.len(), tpos));
                items.push(Item::Jmp {
                    wide: e.chance(60),
                    cond: cond(e),
                    dst: *e.pick(&SCALARS),
                    src,
                    target: usize::MAX,
                });
            }
            12 => {
                // A counted loop on r7.
                items.push(Item::Op(mov_imm(7, 1 + e.below(20) as i32)));
                let head = items.len();
                for _ in 0..1 + e.below(4) {
                    items.push(Item::Op(alu(e, &LOOP_SCALARS)));
                }
                items.push(Item::Op(Op::Alu {
                    wide: true,
                    op: AluOp::Sub,
                    dst: 7,
                    src: Src::Imm(1),
                }));
                items.push(Item::Back {
                    dst: 7,
                    target: head,
                });
            }
            13 => {
                // Helper 5 (unwind) with a scalar argument, then refill r1..r5.
                let arg = *e.pick(&SCALARS);
                items.push(Item::Op(Op::Alu {
                    wide: true,
                    op: AluOp::Mov,
                    dst: 1,
                    src: Src::Reg(arg),
                }));
                items.push(Item::Op(Op::Call { helper: 5 }));
                for r in 1..=5 {
                    items.push(Item::Op(mov_imm(r, imm(e))));
                }
            }
            14 if use_sub => {
                for r in 1..=5 {
                    items.push(Item::Op(mov_imm(r, imm(e))));
                }
                items.push(Item::CallSub);
                for r in 1..=5 {
                    items.push(Item::Op(mov_imm(r, imm(e))));
                }
            }
            _ => {
                let lddw = Op::Lddw {
                    dst: *e.pick(&SCALARS),
                    kind: 0,
                    imm: e.next_u64(),
                };
                items.push(Item::Op(lddw));
            }
        }
    }
    let end = items.len();
    for &(at, tpos) in &pending {
        if tpos >= body_len {
            if let Item::Jmp { target, .. } = &mut items[at] {
                *target = end;
            }
        }
    }
    items.push(Item::Op(Op::Exit));
    // The subprogram: mixes r1..r5 into r0 and uses its own stack frame.
    let sub = items.len();
    if use_sub {
        items.push(Item::Op(Op::Alu {
            wide: true,
            op: AluOp::Mov,
            dst: 0,
            src: Src::Reg(1),
        }));
        for r in 2..=5u8 {
            let op = *e.pick(&[AluOp::Add, AluOp::Xor, AluOp::Mul, AluOp::Sub]);
            items.push(Item::Op(Op::Alu {
                wide: e.chance(50),
                op,
                dst: 0,
                src: Src::Reg(r),
            }));
        }
        items.push(Item::Op(Op::Stx {
            size: 8,
            dst: 10,
            src: 0,
            off: -8,
        }));
        items.push(Item::Op(Op::Ldx {
            size: 4,
            signed: false,
            dst: 3,
            src: 10,
            off: -8,
        }));
        items.push(Item::Op(Op::Alu {
            wide: true,
            op: AluOp::Add,
            dst: 0,
            src: Src::Reg(3),
        }));
        items.push(Item::Op(Op::Exit));
    }
    lower(&items, sub)
}

/// Turns items into slots, resolving item-index targets into slot offsets.
fn lower(items: &[Item], sub: usize) -> Vec<Insn> {
    let mut slot_of = Vec::with_capacity(items.len() + 1);
    let mut n = 0usize;
    for it in items {
        slot_of.push(n);
        n += match it {
            Item::Op(op) => op.slots(),
            _ => 1,
        };
    }
    slot_of.push(n);
    let rel = |from: usize, to: usize| slot_of[to] as i64 - slot_of[from] as i64 - 1;
    let mut out = Vec::with_capacity(n);
    for (i, it) in items.iter().enumerate() {
        let op = match *it {
            Item::Op(op) => op,
            Item::Jmp {
                wide,
                cond,
                dst,
                src,
                target,
            } => Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off: rel(i, target.min(items.len() - 1)) as i16,
            },
            Item::Back { dst, target } => Op::Jmp {
                wide: true,
                cond: Cond::Ne,
                dst,
                src: Src::Imm(0),
                off: rel(i, target) as i16,
            },
            Item::CallSub => Op::CallLocal {
                off: rel(i, sub) as i32,
            },
        };
        out.extend(encode(&op));
    }
    out
}

/// Random packet bytes of a random length (0..=96).
pub fn packet(e: &mut impl Entropy) -> Vec<u8> {
    let len = e.below(97) as usize;
    (0..len).map(|_| e.next_u64() as u8).collect()
}

/// A generated program of at least `n` slots that the verifier accepts for
/// `env` (the first seed that gives one), for size-dependent benchmarks.
pub fn sized_verified(n: usize, env: &std::sync::Arc<super::ProgEnv>) -> Option<Vec<Insn>> {
    let mut steps = n / 3;
    for seed in 0..10_000 {
        let p = generate_sized(&mut SplitMix(seed), 64, steps);
        if p.len() < n {
            steps += 1 + (n - p.len()) / 3;
        } else if super::verifier::verify(&p, env).is_ok() {
            return Some(p);
        }
    }
    None
}

/// Builds a `Program` without the verifier, for engine tests that must run
/// programs the verifier would refuse (or run them all-guarded): a memory access
/// is Stack if its base register holds a copy of r10 (tracked linearly
/// through 64-bit moves, adds and subtracts), Packet otherwise; all guarded
/// or all trusted.
pub fn unverified_program(
    insns: Vec<Insn>,
    env: std::sync::Arc<super::ProgEnv>,
    guard: bool,
) -> super::Program {
    let Ok(decoded) = super::insn::decode_all(&insns) else {
        panic!("unverified_program: the slots must decode");
    };
    let mut ops = vec![None; insns.len()];
    let mut access = vec![None; insns.len()];
    let mut on_stack = [false; 11];
    on_stack[super::insn::R10 as usize] = true;
    for (pc, op) in decoded {
        ops[pc] = Some(op);
        let base = match op {
            Op::Ldx { src, .. } => Some(src),
            Op::St { dst, .. } | Op::Stx { dst, .. } | Op::Atomic { dst, .. } => Some(dst),
            _ => None,
        };
        if let Some(b) = base {
            let region = if on_stack[b as usize] {
                super::vm::Region::Stack
            } else {
                super::vm::Region::Packet
            };
            access[pc] = Some(super::vm::MemAccess { region, guard });
        }
        match op {
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst,
                src: Src::Reg(s),
            } => on_stack[dst as usize] = on_stack[s as usize],
            Op::Alu {
                wide: true,
                op: AluOp::Add | AluOp::Sub,
                ..
            } => {}
            Op::Alu { dst, .. }
            | Op::Neg { dst, .. }
            | Op::End { dst, .. }
            | Op::Lddw { dst, .. }
            | Op::Ldx { dst, .. } => on_stack[dst as usize] = false,
            Op::Atomic {
                src, fetch: true, ..
            } => {
                on_stack[src as usize] = false;
                on_stack[0] = false;
            }
            Op::Call { .. } | Op::CallX { .. } | Op::CallLocal { .. } => {
                on_stack[..6].fill(false);
            }
            _ => {}
        }
    }
    super::Program {
        callx: vec![None; insns.len()],
        insns,
        ops,
        access,
        env,
    }
}
