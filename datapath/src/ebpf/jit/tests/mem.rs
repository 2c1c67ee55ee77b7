//! Loads, stores, bounds guards and atomics.

use super::*;

fn le(mem: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(mem[at..at + 8].try_into().unwrap())
}

#[test]
fn loads_every_size_and_sign_guarded_and_not() {
    let mut mem = [0u8; 16];
    mem[..8].copy_from_slice(&0x8182_8384_f5f6_f7f8u64.to_le_bytes());
    mem[8..].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    let cases: &[(u8, bool, i16, u64)] = &[
        (1, false, 0, 0xf8),
        (2, false, 0, 0xf7f8),
        (4, false, 0, 0xf5f6_f7f8),
        (8, false, 0, 0x8182_8384_f5f6_f7f8),
        (1, true, 0, 0xf8u8 as i8 as i64 as u64),
        (2, true, 0, 0xf7f8u16 as i16 as i64 as u64),
        (4, true, 0, 0xf5f6_f7f8u32 as i32 as i64 as u64),
        (1, true, 8, 0x08),
        (4, true, 8, 0x0506_0708),
        (8, false, 8, 0x0102_0304_0506_0708),
        (2, false, 14, 0x0102),
    ];
    for guard in [true, false] {
        for &(size, signed, off, want) in cases {
            for dst in [0u8, 3, 4, 9] {
                let ops = [
                    Op::Ldx {
                        size,
                        signed,
                        dst,
                        src: 1,
                        off,
                    },
                    movr(0, dst),
                    Op::Exit,
                ];
                let p = program(insn::encode_all(&ops), ProgEnv::mem(), guard);
                assert_eq!(
                    run_prog(&p, &mut mem),
                    Ok(want),
                    "size {size} signed {signed} off {off} dst r{dst} guard {guard}"
                );
            }
        }
    }
}

#[test]
fn stores_every_size_from_register_and_immediate() {
    for guard in [true, false] {
        for size in [1u8, 2, 4, 8] {
            for src in [0u8, 2, 4, 6] {
                let mut mem = [0xeeu8; 24];
                let ops = [
                    lddw(src, 0x1122_3344_5566_7788),
                    stx(size, 1, src, 4),
                    Op::St {
                        size,
                        dst: 1,
                        off: 12,
                        imm: -2,
                    },
                    mov64(0, 0),
                    Op::Exit,
                ];
                let p = program(insn::encode_all(&ops), ProgEnv::mem(), guard);
                assert_eq!(run_prog(&p, &mut mem), Ok(0));
                let n = size as usize;
                let mut want = [0xeeu8; 24];
                want[4..4 + n].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes()[..n]);
                want[12..12 + n].copy_from_slice(&(-2i64).to_le_bytes()[..n]);
                assert_eq!(mem, want, "size {size} src r{src} guard {guard}");
            }
        }
    }
}

#[test]
fn stack_round_trip_and_fresh_zeroed_stack_each_run() {
    // r0 = old [r10-16] (must read 0 every run), then [r10-16] = 77 and a
    // round trip through [r10-512].
    let ops = [
        ldx(8, 0, 10, -16),
        mov64(2, 77),
        stx(8, 10, 2, -16),
        stx(4, 10, 2, -512),
        ldx(4, 3, 10, -512),
        alu64(AluOp::Add, 0, Src::Reg(3)),
        Op::Exit,
    ];
    for guard in [true, false] {
        let p = program(insn::encode_all(&ops), ProgEnv::mem(), guard);
        let jp = compile(&p).unwrap();
        let mut scratch = JitScratch::new();
        for _ in 0..3 {
            assert_eq!(jp.run_with(&mut scratch, RunInput::mem(&mut [])), Ok(77));
            assert_eq!(jp.run(RunInput::mem(&mut [])), Ok(77));
        }
    }
}

#[test]
fn guarded_accesses_report_exact_out_of_bounds_errors() {
    let oob = |pc, region, offset, size| RunError::OutOfBounds {
        pc,
        region,
        offset,
        size,
    };
    let mut mem = [0u8; 12];
    // Last byte that fits, then one past.
    for size in [1u8, 2, 4, 8] {
        let fit = 12 - i16::from(size);
        let ops = [
            mov64(0, 5),
            ldx(size, 2, 1, fit),
            ldx(size, 2, 1, fit + 1),
            Op::Exit,
        ];
        assert_eq!(
            run_ops(&ops, &mut mem),
            Err(oob(2, Region::Packet, i64::from(fit) + 1, size))
        );
        // Below the start.
        let ops = [stx(size, 1, 1, -1), Op::Exit];
        assert_eq!(
            run_ops(&ops, &mut mem),
            Err(oob(0, Region::Packet, -1, size))
        );
    }
    // Far away, through pointer arithmetic (offset = address - start).
    let ops = [
        lddw(3, 0x10_0000_0000),
        alu64(AluOp::Add, 1, Src::Reg(3)),
        Op::St {
            size: 8,
            dst: 1,
            off: 0,
            imm: 0,
        },
        Op::Exit,
    ];
    assert_eq!(
        run_ops(&ops, &mut mem),
        Err(oob(3, Region::Packet, 0x10_0000_0000, 8))
    );
    // A wrapped address (start - 2^63).
    let ops = [
        lddw(3, 1 << 63),
        alu64(AluOp::Add, 1, Src::Reg(3)),
        ldx(1, 0, 1, 0),
        Op::Exit,
    ];
    assert_eq!(
        run_ops(&ops, &mut mem),
        Err(oob(3, Region::Packet, i64::MIN, 1))
    );
    // Empty packet: nothing fits, not even at offset 0.
    let ops = [ldx(1, 0, 1, 0), Op::Exit];
    assert_eq!(run_ops(&ops, &mut []), Err(oob(0, Region::Packet, 0, 1)));
    // Stack: offsets are from the start of the whole stack buffer.
    let total = STACK_TOTAL as i64;
    let ops = [ldx(8, 0, 10, -8), ldx(8, 0, 10, -4), Op::Exit];
    assert_eq!(
        run_ops(&ops, &mut []),
        Err(oob(1, Region::Stack, total - 4, 8))
    );
    let ops = [
        movr(2, 10),
        alu64(AluOp::Sub, 2, Src::Imm(STACK_TOTAL as i32)),
        ldx(1, 0, 2, 0),
        ldx(1, 0, 2, -1),
        Op::Exit,
    ];
    let mut p = prog_ops(&ops);
    for a in p.access.iter_mut().flatten() {
        a.region = Region::Stack;
    }
    assert_eq!(run_prog(&p, &mut []), Err(oob(3, Region::Stack, -1, 1)));
    // Atomics are guarded too.
    let ops = [
        mov64(2, 1),
        Op::Atomic {
            size: 8,
            op: AtomicOp::Add,
            fetch: true,
            dst: 1,
            src: 2,
            off: 8,
        },
        Op::Exit,
    ];
    assert_eq!(run_ops(&ops, &mut mem), Err(oob(1, Region::Packet, 8, 8)));
}

#[test]
fn ctx_region_is_guarded_against_ctx_bounds() {
    let env = Arc::new(ProgEnv {
        entry: Entry::Ctx(crate::ebpf::vm::CtxLayout {
            size: 8,
            fields: vec![],
        }),
        helpers: HelperRegistry::standard(),
        budget: DEFAULT_BUDGET,
        maps: Default::default(),
    });
    let ops = [ldx(4, 0, 1, 4), ldx(4, 0, 1, 6), Op::Exit];
    let mut p = program(insn::encode_all(&ops), env, true);
    for a in p.access.iter_mut().flatten() {
        a.region = Region::Ctx;
    }
    let jp = compile(&p).unwrap();
    let mut ctx = [1u8; 8];
    let r = jp.run(RunInput::ctx(&mut [0u8; 64], &mut ctx));
    assert_eq!(
        r,
        Err(RunError::OutOfBounds {
            pc: 1,
            region: Region::Ctx,
            offset: 6,
            size: 4
        })
    );
}

/// Expected (memory, src, r0) after an atomic on 8 bytes of memory `m`.
fn atomic_model(
    wide: bool,
    op: AtomicOp,
    fetch: bool,
    m: u64,
    s: u64,
    r0: u64,
    src_is_r0: bool,
) -> (u64, u64, u64) {
    let mask = if wide { u64::MAX } else { 0xffff_ffff };
    let old = m & mask;
    let sv = s & mask;
    let merge = |v: u64| (m & !mask) | (v & mask);
    let (mem, new_src, new_r0) = match op {
        AtomicOp::Add => (merge(old.wrapping_add(sv)), fetch.then_some(old), None),
        AtomicOp::Or => (merge(old | sv), fetch.then_some(old), None),
        AtomicOp::And => (merge(old & sv), fetch.then_some(old), None),
        AtomicOp::Xor => (merge(old ^ sv), fetch.then_some(old), None),
        AtomicOp::Xchg => (merge(sv), Some(old), None),
        AtomicOp::CmpXchg => {
            let mem = if r0 & mask == old { merge(sv) } else { m };
            (mem, None, Some(old))
        }
    };
    let mut src_out = new_src.unwrap_or(s);
    let mut r0_out = new_r0.unwrap_or(r0);
    if src_is_r0 {
        // One register: whichever write happens wins.
        let v = new_r0.or(new_src).unwrap_or(s);
        src_out = v;
        r0_out = v;
    }
    (mem, src_out, r0_out)
}

#[test]
fn atomics_every_op_width_and_register() {
    let all = [
        (AtomicOp::Add, false),
        (AtomicOp::Add, true),
        (AtomicOp::Or, false),
        (AtomicOp::Or, true),
        (AtomicOp::And, false),
        (AtomicOp::And, true),
        (AtomicOp::Xor, false),
        (AtomicOp::Xor, true),
        (AtomicOp::Xchg, true),
        (AtomicOp::CmpXchg, true),
    ];
    let m0 = 0xf0f0_1234_8000_00ffu64;
    let svals = [0x0f0f_0000_8000_0f01u64, 0xf0f0_1234_8000_00ff];
    let r0vals = [m0, 0x1111_1111_8000_00ff, 5];
    for wide in [true, false] {
        let size = if wide { 8 } else { 4 };
        for (op, fetch) in all {
            for guard in [true, false] {
                for base in [1u8, 5, 0] {
                    for src in [0u8, 2, 3, 4, 9] {
                        if src == base || (base == 0 && op == AtomicOp::CmpXchg) {
                            continue;
                        }
                        for s in svals {
                            for r0 in r0vals {
                                let mut mem = [0u8; 32];
                                mem[8..16].copy_from_slice(&m0.to_le_bytes());
                                // r6 keeps the memory pointer for the dump.
                                let mut ops = vec![movr(6, 1), lddw(src, s)];
                                if src != 0 && base != 0 {
                                    ops.push(lddw(0, r0));
                                }
                                ops.push(movr(base, 6));
                                ops.push(Op::Atomic {
                                    size,
                                    op,
                                    fetch,
                                    dst: base,
                                    src,
                                    off: 8,
                                });
                                ops.push(stx(8, 6, src, 16));
                                ops.push(stx(8, 6, 0, 24));
                                ops.push(mov64(0, 0));
                                ops.push(Op::Exit);
                                let p = program(insn::encode_all(&ops), ProgEnv::mem(), guard);
                                assert_eq!(run_prog(&p, &mut mem), Ok(0));
                                let r0_in = if base == 0 {
                                    mem.as_ptr() as u64
                                } else if src == 0 {
                                    s
                                } else {
                                    r0
                                };
                                let want = atomic_model(wide, op, fetch, m0, s, r0_in, src == 0);
                                let got = (le(&mem, 8), le(&mem, 16), le(&mem, 24));
                                let got_r0 = if base == 0 && src != 0 {
                                    want.2 // r0 was the pointer; not compared
                                } else {
                                    got.2
                                };
                                assert_eq!(
                                    (got.0, got.1, got_r0),
                                    want,
                                    "wide={wide} {op:?} fetch={fetch} base=r{base} \
                                     src=r{src} s={s:#x} r0={r0:#x} guard={guard}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
