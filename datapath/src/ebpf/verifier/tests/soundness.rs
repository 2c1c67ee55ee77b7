//! Soundness against the interpreter: an access the verifier proved in
//! bounds (`guard: false`) must never fail its bounds check at run time, and
//! stack and ctx accesses (always proven) never fail at all.

use super::*;
use crate::ebpf::interp;
use crate::ebpf::vm::RunInput;
use crate::ebpf::RunError;
use proptest::prelude::*;

/// One step of a generated packet-parsing program.
#[derive(Debug, Clone)]
enum Item {
    /// `if len < n goto out` (MemLen) or `if pkt + n > end goto out` (ctx).
    Check(u8),
    /// Load of `size` bytes at a constant packet offset.
    Load(u8, i16),
    /// Store of `size` bytes at a constant packet offset.
    Store(u8, i16),
    /// Load at `pkt + (byte & mask) + off`: a variable offset.
    VarLoad(u8, i16),
    /// Skip the next `n` items if the last loaded value is odd.
    Skip(u8),
    /// Stack store and load back at `-8 * slot`.
    Stack(u8),
    /// `r8 = pkt + (byte & mask)`: a new variable base.
    VarBase(u8),
    /// `if r8 + n > end goto out` (ctx; MemLen programs get `Check`).
    VarCheck(u8),
    /// Load of `size` bytes at `r8 + off`.
    VarAccess(u8, i16),
    /// `r8 += n`: moves the variable base by a constant.
    VarMove(i8),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (0u8..48).prop_map(Item::Check),
        (prop::sample::select(vec![1u8, 2, 4, 8]), -4i16..48).prop_map(|(s, o)| Item::Load(s, o)),
        (prop::sample::select(vec![1u8, 2, 4, 8]), -4i16..48).prop_map(|(s, o)| Item::Store(s, o)),
        (prop::sample::select(vec![1u8, 3, 7, 15]), 0i16..40)
            .prop_map(|(m, o)| Item::VarLoad(m, o)),
        (1u8..4).prop_map(Item::Skip),
        (1u8..64).prop_map(Item::Stack),
        prop::sample::select(vec![1u8, 3, 7, 15, 31]).prop_map(Item::VarBase),
        (0u8..40).prop_map(Item::VarCheck),
        (prop::sample::select(vec![1u8, 2, 4, 8]), -8i16..40)
            .prop_map(|(s, o)| Item::VarAccess(s, o)),
        (-8i8..8).prop_map(Item::VarMove),
    ]
}

fn size_suffix(size: u8) -> &'static str {
    match size {
        1 => "b",
        2 => "h",
        4 => "w",
        _ => "dw",
    }
}

/// Assembly for the items. r6 = packet start; r7 = packet end (ctx) or
/// length (MemLen); r3 = the last loaded value.
fn program(items: &[Item], ctx: bool) -> String {
    let mut src = String::new();
    if ctx {
        src.push_str("ldxdw %r6, [%r1+0]\nldxdw %r7, [%r1+8]\n");
    } else {
        src.push_str("mov %r6, %r1\nmov %r7, %r2\n");
    }
    src.push_str("mov %r0, 0\nmov %r3, 0\nmov %r8, %r6\n");
    for (i, it) in items.iter().enumerate() {
        src.push_str(&format!("i{i}:\n"));
        match *it {
            Item::Check(n) if ctx => src.push_str(&format!(
                "mov %r4, %r6\nadd %r4, {n}\njgt %r4, %r7, out\n"
            )),
            Item::Check(n) => src.push_str(&format!("jlt %r7, {n}, out\n")),
            Item::Load(s, o) => src.push_str(&format!("ldx{} %r3, [%r6{o:+}]\n", size_suffix(s))),
            Item::Store(s, o) => src.push_str(&format!("st{} [%r6{o:+}], 7\n", size_suffix(s))),
            Item::VarLoad(m, o) => src.push_str(&format!(
                "ldxb %r4, [%r6+0]\nand %r4, {m}\nmov %r5, %r6\nadd %r5, %r4\nldxb %r3, [%r5{o:+}]\n"
            )),
            Item::Skip(n) => {
                let target = i + 1 + usize::from(n);
                let label = if target >= items.len() {
                    "out".to_string()
                } else {
                    format!("i{target}")
                };
                src.push_str(&format!("jset %r3, 1, {label}\n"));
            }
            Item::VarBase(m) => src.push_str(&format!(
                "ldxb %r4, [%r6+0]\nand %r4, {m}\nmov %r8, %r6\nadd %r8, %r4\n"
            )),
            Item::VarCheck(n) if ctx => src.push_str(&format!(
                "mov %r4, %r8\nadd %r4, {n}\njgt %r4, %r7, out\n"
            )),
            Item::VarCheck(n) => src.push_str(&format!("jlt %r7, {n}, out\n")),
            Item::VarAccess(s, o) => {
                src.push_str(&format!("ldx{} %r3, [%r8{o:+}]\n", size_suffix(s)))
            }
            Item::VarMove(n) => src.push_str(&format!("add %r8, {n}\n")),
            Item::Stack(slot) => {
                let off = -8 * i16::from(slot);
                src.push_str(&format!("stxdw [%r10{off}], %r3\nldxdw %r3, [%r10{off}]\n"));
            }
        }
        src.push_str("add %r0, %r3\n");
    }
    src.push_str("out:\nexit\n");
    src
}

/// Runs the program and checks any out-of-bounds error against the
/// verifier's annotations.
fn check(p: &Program, pkt: &mut [u8], ctx: bool) -> Result<(), TestCaseError> {
    let mut ctx_mem = vec![0u8; 32];
    let input = if ctx {
        let mut input = RunInput::ctx(pkt, &mut ctx_mem);
        if let crate::ebpf::Entry::Ctx(layout) = &p.env.entry {
            crate::ebpf::vm::fill_ctx_pointers(layout, &mut input);
        }
        input
    } else {
        RunInput::mem(pkt)
    };
    if let Err(RunError::OutOfBounds { pc, region, .. }) = interp::run(p, input) {
        let a = p.access[pc].expect("annotated");
        prop_assert_eq!(a.region, region);
        prop_assert!(
            a.guard,
            "proven access at {} failed at run time ({:?})",
            pc,
            region
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]
    #[test]
    fn proven_accesses_never_fail_at_run_time(
        items in prop::collection::vec(item(), 1..24),
        ctx in any::<bool>(),
        len in 0usize..56,
        fill in any::<u8>(),
    ) {
        let env = if ctx { ctx_env() } else { mem_env() };
        let src = program(&items, ctx);
        let p = verify(&asm(&src), &env).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let mut pkt: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        check(&p, &mut pkt, ctx)?;
    }
}

/// The generator does produce both kinds of packet access.
#[test]
fn generated_programs_mix_proven_and_guarded_accesses() {
    let items = [
        Item::Load(1, 0),
        Item::Check(20),
        Item::Load(4, 16),
        Item::Load(4, 17),
    ];
    for ctx in [false, true] {
        let env = if ctx { ctx_env() } else { mem_env() };
        let p = verify(&asm(&program(&items, ctx)), &env).expect("verifies");
        let guards: Vec<bool> = p
            .access
            .iter()
            .flatten()
            .filter(|a| a.region == Region::Packet)
            .map(|a| a.guard)
            .collect();
        assert_eq!(guards, [true, false, true], "ctx={ctx}");
    }
    // And variable offsets proven by their own check.
    let items = [
        Item::VarBase(7),
        Item::VarCheck(12),
        Item::VarAccess(4, 8),
        Item::VarAccess(4, 9),
        Item::VarMove(-2),
        Item::VarAccess(2, 12),
    ];
    let p = verify(&asm(&program(&items, true)), &ctx_env()).expect("verifies");
    let guards: Vec<bool> = p
        .access
        .iter()
        .flatten()
        .filter(|a| a.region == Region::Packet)
        .map(|a| a.guard)
        .collect();
    assert_eq!(guards, [true, false, true, false]);
}
