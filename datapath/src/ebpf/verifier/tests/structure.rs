//! Structural rejections: decoding, registers, jump targets, fall-through, r10, helper ids.

use super::*;

#[test]
fn empty_program_is_rejected() {
    assert_eq!(verify(&[], &mem_env()).err(), Some(VerifyError::Empty));
}

#[test]
fn bad_opcode_is_rejected_with_raw_text() {
    let prog = [Insn::new(0xff, 0, 0, 0, 0), asm("exit")[0]];
    let e = verify(&prog, &mem_env()).unwrap_err();
    assert_eq!(
        e.reason(),
        Some(&Reason::Decode(CodecError::UnknownOpcode { op: 0xff }))
    );
    assert_eq!(e.pc(), Some(0));
    assert!(
        e.to_string().starts_with("insn 0: .raw 0x00000000000000ff"),
        "{e}"
    );
}

#[test]
fn bad_register_is_rejected() {
    let mut prog = asm("mov %r0, 0\nexit");
    prog[0].dst = 11;
    let e = verify(&prog, &mem_env()).unwrap_err();
    assert_eq!(
        e.reason(),
        Some(&Reason::Decode(CodecError::BadRegister {
            op: 0xb7,
            reg: 11
        }))
    );
}

#[test]
fn jumps_out_of_range_are_rejected() {
    let (pc, r, _) = reject("mov %r0, 0\nja +5\nexit");
    assert_eq!((pc, r), (1, Reason::JumpOutOfRange { target: 7, len: 3 }));
    let (pc, r, _) = reject("mov %r0, 0\njeq %r0, 0, -3\nexit");
    assert_eq!((pc, r), (1, Reason::JumpOutOfRange { target: -1, len: 3 }));
    let (_, r, _) = reject("mov %r0, 0\ncall local +9\nexit");
    assert_eq!(r, Reason::JumpOutOfRange { target: 11, len: 3 });
}

#[test]
fn jump_into_second_half_of_lddw_is_rejected() {
    let (pc, r, _) = reject("ja +1\nlddw %r0, 1\nexit");
    assert_eq!((pc, r), (0, Reason::JumpIntoLddw { target: 2 }));
    let (_, r, _) = reject("mov %r0, 0\ncall local +1\nlddw %r0, 1\nexit");
    assert_eq!(r, Reason::JumpIntoLddw { target: 3 });
}

#[test]
fn falling_off_the_end_is_rejected() {
    let (pc, r, _) = reject("mov %r0, 0");
    assert_eq!((pc, r), (0, Reason::FallsOffEnd));
    let (pc, r, _) = reject("mov %r0, 0\njeq %r0, 0, -2");
    assert_eq!((pc, r), (1, Reason::FallsOffEnd));
    let (_, r, _) = reject("mov %r0, 0\nexit\ncall 5");
    assert_eq!(r, Reason::FallsOffEnd);
    // A final unconditional jump is fine.
    accept("mov %r0, 0\nja +1\nja -2\nexit");
}

#[test]
fn writes_to_r10_are_rejected() {
    for src in [
        "mov %r10, 0\nexit",
        "add %r10, 8\nexit",
        "neg %r10\nexit",
        "le16 %r10\nexit",
        "lddw %r10, 5\nexit",
        "ldxdw %r10, [%r1]\nexit",
        "stdw [%r10-8], 0\nlock fetch add [%r10-8], %r10\nexit",
        "stdw [%r10-8], 0\nlock xchg [%r10-8], %r10\nexit",
    ] {
        let (_, r, _) = reject(src);
        assert_eq!(r, Reason::WriteToR10, "{src}");
    }
    // Reading r10 is fine, and cmpxchg writes r0, not src.
    accept("stxdw [%r10-8], %r10\nmov %r0, 0\nexit");
    accept("stdw [%r10-8], 0\nmov %r0, 0\nmov %r3, 1\nlock cmpxchg [%r10-8], %r3\nexit");
}

#[test]
fn unknown_helpers_are_rejected() {
    let (pc, r, text) = reject("mov %r0, 0\ncall 99\nexit");
    assert_eq!((pc, r), (1, Reason::UnknownHelper { id: 99 }));
    assert_eq!(text, "insn 1: call 99: unknown helper 99");
    let (_, r, _) = reject("call -1\nexit");
    assert_eq!(r, Reason::UnknownHelper { id: -1 });
}

#[test]
fn lddw_of_an_undeclared_map_is_rejected() {
    let (_, r, text) = reject("lddw %r1, map 3\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::UnknownMap { index: 3 });
    assert_eq!(
        text,
        "insn 0: lddw %r1, map 0x3: lddw of map 3, which the environment does not declare"
    );
}
