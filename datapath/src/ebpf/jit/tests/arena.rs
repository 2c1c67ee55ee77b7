//! Executable arenas: sharing, W^X, and the generated code decoding as
//! valid x86-64.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic};

use super::*;

/// Every mapping in /proc/self/maps as (start, end, perms).
fn maps() -> Vec<(usize, usize, String)> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap();
    text.lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap().to_string();
            let (a, b) = range.split_once('-').unwrap();
            (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
                perms,
            )
        })
        .collect()
}

#[test]
fn no_mapping_is_writable_and_executable() {
    let mut keep = Vec::new();
    for n in 0..20 {
        let ops = [mov64(0, n), alu64(AluOp::Mul, 0, Src::Imm(3)), Op::Exit];
        keep.push(compile(&prog_ops(&ops)).unwrap());
    }
    let batch: Vec<Program> = (0..50)
        .map(|n| prog_ops(&[mov64(0, n), Op::Exit]))
        .collect();
    keep.extend(compile_many(&batch.iter().collect::<Vec<_>>()).unwrap());
    for (i, jp) in keep.iter().enumerate().take(20) {
        assert_eq!(jp.run(RunInput::mem(&mut [])), Ok(i as u64 * 3));
    }
    let maps = maps();
    for (a, b, perms) in &maps {
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "mapping {a:#x}-{b:#x} is {perms}"
        );
    }
    // And the arenas really are there, as r-x.
    for jp in &keep {
        let info = jp.arena().unwrap();
        let m = maps
            .iter()
            .find(|(a, b, _)| *a <= info.base && info.base < *b)
            .expect("arena is mapped");
        assert!(m.2.starts_with("r-x"), "arena mapped as {}", m.2);
    }
}

#[test]
fn hundred_thousand_programs_share_an_arena() {
    const N: usize = 100_000;
    let progs: Vec<Program> = (0..N)
        .map(|i| {
            let ops = [
                mov64(0, i as i32),
                alu64(AluOp::Add, 0, Src::Reg(2)),
                Op::Exit,
            ];
            prog_ops(&ops)
        })
        .collect();
    let refs: Vec<&Program> = progs.iter().collect();
    let jps = compile_many(&refs).unwrap();
    assert_eq!(jps.len(), N);
    let mut arenas = std::collections::HashMap::new();
    for jp in &jps {
        let info = jp.arena().unwrap();
        arenas.insert(info.base, info.mapped_bytes);
    }
    let mapped: usize = arenas.values().sum();
    println!(
        "{N} programs: {} arena(s), {} bytes mapped, {} bytes of code",
        arenas.len(),
        mapped,
        jps[0].arena().unwrap().code_bytes
    );
    assert_eq!(arenas.len(), 1);
    assert!(mapped < 64 << 20, "{mapped} bytes mapped");
    // Far below one page per program.
    assert!(mapped < N * 64, "{mapped} bytes mapped");
    let mut mem = [0u8; 3];
    for (i, jp) in jps.iter().enumerate() {
        assert_eq!(jp.run(RunInput::mem(&mut mem)), Ok(i as u64 + 3));
    }
}

/// Decodes `code` completely; panics on any invalid instruction.
fn disassemble(code: &[u8]) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, 0x1000, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut f = IntelFormatter::new();
    let mut text = String::new();
    while d.can_decode() {
        let i = d.decode();
        text.clear();
        f.format(&i, &mut text);
        assert!(
            !i.is_invalid(),
            "invalid instruction at {:#x}: {:02x?}",
            i.ip(),
            &code[(i.ip() - 0x1000) as usize..]
        );
        out.push(i);
    }
    out
}

#[test]
fn generated_code_disassembles_as_valid_x86_64() {
    // One program touching every instruction family.
    let all_alu = AluOp::BOTH_WIDTHS;
    let mut ops = vec![stx(8, 10, 1, -8)];
    for wide in [true, false] {
        for op in all_alu {
            for (dst, src) in [(0u8, 3u8), (4, 1), (1, 4), (3, 0), (9, 6)] {
                ops.push(Op::Alu {
                    wide,
                    op,
                    dst,
                    src: Src::Reg(src),
                });
                if !matches!(op, AluOp::MovSx(_)) {
                    ops.push(Op::Alu {
                        wide,
                        op,
                        dst,
                        src: Src::Imm(-3),
                    });
                }
            }
        }
        ops.push(Op::Neg { wide, dst: 7 });
    }
    for kind in [EndKind::Le, EndKind::Be] {
        for bits in [16, 32, 64] {
            ops.push(Op::End { kind, bits, dst: 5 });
        }
    }
    ops.push(ldx(8, 1, 10, -8));
    for size in [1u8, 2, 4, 8] {
        for signed in [false, true] {
            if size < 8 || !signed {
                ops.push(Op::Ldx {
                    size,
                    signed,
                    dst: 2,
                    src: 1,
                    off: 0,
                });
            }
        }
        ops.push(stx(size, 1, 4, 0));
        ops.push(Op::St {
            size,
            dst: 10,
            off: -16,
            imm: 1,
        });
    }
    for size in [4u8, 8] {
        for (op, fetch) in [
            (AtomicOp::Add, false),
            (AtomicOp::Add, true),
            (AtomicOp::Or, true),
            (AtomicOp::And, false),
            (AtomicOp::Xor, true),
            (AtomicOp::Xchg, true),
            (AtomicOp::CmpXchg, true),
        ] {
            ops.push(Op::Atomic {
                size,
                op,
                fetch,
                dst: 10,
                src: 3,
                off: -24,
            });
        }
    }
    ops.push(mov64(1, 1));
    ops.push(Op::Call { helper: 5 });
    ops.push(Op::CallX { reg: 2 });
    ops.push(Op::CallLocal { off: 2 });
    ops.push(jmp(Cond::Sgt, 0, Src::Imm(5), -3));
    ops.push(Op::Exit);
    ops.push(mov64(0, 1));
    ops.push(Op::Exit);
    let p = prog_ops(&ops);
    let other = prog_ops(&[mov64(0, 1), Op::Exit]);
    let jps = compile_many(&[&other, &p]).unwrap();
    let jp = &jps[1];

    let body = disassemble(jp.code());
    // The whole arena (both programs and the padding between them) decodes too.
    let whole = disassemble(jp.arena_code());
    assert!(whole.len() > body.len() + 2);
    let has = |m: Mnemonic| body.iter().any(|i| i.mnemonic() == m);
    for m in [
        Mnemonic::Div,
        Mnemonic::Idiv,
        Mnemonic::Imul,
        Mnemonic::Bswap,
        Mnemonic::Movsx,
        Mnemonic::Movsxd,
        Mnemonic::Movzx,
        Mnemonic::Shl,
        Mnemonic::Sar,
        Mnemonic::Xadd,
        Mnemonic::Cmpxchg,
        Mnemonic::Xchg,
        Mnemonic::Call,
        Mnemonic::Ret,
    ] {
        assert!(has(m), "no {m:?} in the generated code");
    }
    // Every read-modify-write of memory by an atomic carries `lock`
    // (xchg with memory is locked by the processor).
    for i in &body {
        if matches!(i.mnemonic(), Mnemonic::Xadd | Mnemonic::Cmpxchg) {
            assert!(i.has_lock_prefix(), "{:?} without lock", i.mnemonic());
        }
    }
    let locked = body.iter().filter(|i| i.has_lock_prefix()).count();
    // add, add-fetch, or-fetch loop, and, xor-fetch loop, cmpxchg: 6 per width.
    assert_eq!(locked, 12);
}

#[test]
fn tiny_programs_take_a_few_bytes() {
    let jp = compile(&prog_ops(&[mov64(0, 1), Op::Exit])).unwrap();
    // No prologue to speak of: xor eax, eax; mov eax, 1; ret.
    let ins = disassemble(jp.code());
    assert_eq!(ins.len(), 3, "{:02x?}", jp.code());
    assert_eq!(ins[2].mnemonic(), Mnemonic::Ret);
    assert!(jp.code().len() <= 12);
}
