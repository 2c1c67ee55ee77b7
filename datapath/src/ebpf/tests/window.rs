//! `Entry::Ctx` packet windows: the Packet region is `[data, data_end)` of
//! the packet buffer as the context says, at entry and after helpers that
//! move it; helpers get the caller's per-run state.

use super::*;
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::vm::{
    window_fault, CtxField, CtxLayout, Entry, Region, DEFAULT_BUDGET, UNFLAGGED_WINDOW_CHANGE,
};

const DATA: usize = 0;
const END: usize = 8;
const CTX_LEN: usize = 24;

fn get(ctx: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(ctx[off..off + 8].try_into().unwrap())
}

fn put(ctx: &mut [u8], off: usize, v: u64) {
    ctx[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Helper 20 `shift(ctx, n)`: moves `data` by n (changes the packet).
fn shift(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let d = get(h.ctx, DATA);
    put(h.ctx, DATA, d.wrapping_add(a[1]));
    Ok(0)
}

/// Helper 21 `sneak(ctx)`: shortens the window without the flag.
fn sneak(h: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    let e = get(h.ctx, END);
    put(h.ctx, END, e - 1);
    Ok(0)
}

/// Helper 22 `count(ctx)`: increments the per-run `u64` state.
fn count(h: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    let n = h
        .state_mut::<u64>()
        .ok_or_else(|| HelperExit::Fault("no u64 state".into()))?;
    *n += 1;
    Ok(*n)
}

/// Helper 23 `len(ctx)`: the packet buffer's length as the helper sees it.
fn buf_len(h: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    Ok(h.pkt.len() as u64)
}

fn env() -> Arc<ProgEnv> {
    let mut reg = HelperRegistry::new();
    let c = ArgKind::Ctx;
    let u = ArgKind::Unused;
    for (id, name, func, scalar, changes_packet) in [
        (
            20,
            "shift",
            shift as crate::ebpf::helpers::HelperFn,
            true,
            true,
        ),
        (21, "sneak", sneak, false, false),
        (22, "count", count, false, false),
        (23, "len", buf_len, false, false),
    ] {
        reg.register(Helper {
            id,
            name,
            args: [c, if scalar { ArgKind::Scalar } else { u }, u, u, u],
            func,
            changes_packet,
            ret: Default::default(),
        });
    }
    Arc::new(ProgEnv {
        entry: Entry::Ctx(CtxLayout {
            size: CTX_LEN,
            fields: vec![
                (DATA, 8, CtxField::PacketStart),
                (END, 8, CtxField::PacketEnd),
                (16, 8, CtxField::ScalarRw),
            ],
        }),
        helpers: Arc::new(reg),
        budget: DEFAULT_BUDGET,
        maps: Default::default(),
    })
}

/// Buffer bytes 0..64 (each byte its offset).
fn buffer() -> Vec<u8> {
    (0..64).collect()
}

/// Runs `src` with the window `[start, end)` (offsets; may lie outside).
fn run_win(src: &str, start: i64, end: i64, state: Option<&u64>) -> Run<u64> {
    let p = load(src, &env());
    run_both(
        &p,
        &buffer(),
        &[0; CTX_LEN],
        state,
        |ctx, base| {
            put(ctx, DATA, base.wrapping_add(start as u64));
            put(ctx, END, base.wrapping_add(end as u64));
        },
        &[DATA, END],
    )
}

#[test]
fn the_packet_region_is_the_window() {
    // r0 = (data_end - data) | data[0] << 8 | data[len-1] << 16.
    let src = "ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\nmov %r0, %r3\nsub %r0, %r2\n\
               mov %r4, %r2\nadd %r4, 20\njgt %r4, %r3, out\n\
               ldxb %r4, [%r2]\nlsh %r4, 8\nor %r0, %r4\nldxb %r4, [%r2+19]\nlsh %r4, 16\nor %r0, %r4\n\
               out:\nexit";
    let r = run_win(src, 10, 30, None);
    assert_eq!(r.r0, Ok(20 | 10 << 8 | 29 << 16));
    assert_eq!((get(&r.ctx, DATA), get(&r.ctx, END)), (10, 30));
    // An empty window at the buffer's end, and the whole buffer.
    assert_eq!(run_win(src, 64, 64, None).r0, Ok(0));
    assert_eq!(run_win(src, 0, 64, None).r0, Ok(64 | 19 << 16));
}

#[test]
fn lean_entries_check_the_context_and_window_and_write_both() {
    // Proven packet accesses and a context store, no helper: the JIT
    // enters it without setting up its run state.
    let src = "ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\nmov %r4, %r2\nadd %r4, 4\n\
               mov %r0, 0\njgt %r4, %r3, out\nldxw %r0, [%r2]\nstb [%r2+1], 0xaa\n\
               stxdw [%r1+16], %r0\nout:\nexit";
    let p = load(src, &env());
    assert!(p.access.iter().flatten().all(|a| !a.guard));
    let j = jit::compile(&p).unwrap();
    assert!(j.lean_entry());
    let r = run_win(src, 10, 30, None);
    let want = u32::from_le_bytes([10, 11, 12, 13]);
    assert_eq!(r.r0, Ok(u64::from(want)));
    assert_eq!(get(&r.ctx, 16), u64::from(want));
    let mut pkt = buffer();
    pkt[11] = 0xaa;
    assert_eq!(r.pkt, pkt);
    // Too short a window: the program's own check.
    assert_eq!(run_win(src, 10, 13, None).r0, Ok(0));
    // Windows outside the buffer and a short context are refused at entry.
    assert_eq!(
        run_win(src, 62, 70, None).r0,
        Err(RunError::PacketWindow {
            data: 62,
            data_end: 70,
            len: 64
        })
    );
    let short = run_both::<u64>(&p, &buffer(), &[0; 16], None, |_, _| {}, &[]);
    assert_eq!(short.r0, Err(RunError::CtxTooSmall { len: 16, need: 24 }));
    // A helper call, a guarded access or a loop needs the run state.
    for src in [
        "call 23\nexit",
        "ldxdw %r2, [%r1]\nldxb %r0, [%r2+20]\nexit",
        "mov %r0, 3\nloop:\nsub %r0, 1\njne %r0, 0, loop\nexit",
    ] {
        let j = jit::compile(&load(src, &env())).unwrap();
        assert!(!j.lean_entry(), "{src}");
    }
}

#[test]
fn lean_tables_hold_lean_programs_and_run_them_as_run_with() {
    let lean = "ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\nmov %r0, %r3\nsub %r0, %r2\n\
                mov %r4, %r2\nadd %r4, 2\njgt %r4, %r3, out\nldxb %r4, [%r2+1]\nstb [%r2], 0x77\n\
                lsh %r4, 8\nor %r0, %r4\nout:\nexit";
    let other = "mov %r0, 9\nexit";
    let mut progs: Vec<jit::JitProgram> = [lean, "call 23\nexit", other]
        .iter()
        .map(|src| jit::compile(&load(src, &env())).unwrap())
        .collect();
    // A lean program with another context layout is left out.
    let mut wide = env().as_ref().clone();
    if let Entry::Ctx(l) = &mut wide.entry {
        l.size = 32;
    }
    progs.push(jit::compile(&load(lean, &Arc::new(wide))).unwrap());
    assert!(progs[3].lean_entry());
    let t = jit::LeanTable::new([
        Some(&progs[0]),
        Some(&progs[1]),
        None,
        Some(&progs[2]),
        Some(&progs[3]),
    ]);
    assert_eq!((t.len(), t.count()), (5, 2));
    let present: Vec<bool> = (0..6).map(|i| t.get(i).is_some()).collect();
    assert_eq!(present, [true, false, false, true, false, false]);
    assert!(t.slot(4).is_some() && t.slot(5).is_none());
    assert_eq!(t.get(3).unwrap().code_addr(), progs[2].code_addr().unwrap());
    // Windows inside and outside the buffer, and a short context: the
    // same r0, packet and context, or the same error, as `run_with`.
    let mut scratch = jit::JitScratch::new();
    for (i, start, end, ctx_len) in [
        (0, 10, 30, CTX_LEN),
        (0, 10, 11, CTX_LEN),
        (3, 0, 64, CTX_LEN),
        (0, 62, 70, CTX_LEN),
        (0, 30, 10, CTX_LEN),
        (0, 10, 30, 16),
    ] {
        let prog = &progs[if i == 0 { 0 } else { 2 }];
        let run = |table: bool, scratch: &mut jit::JitScratch| {
            let mut pkt = buffer();
            let mut ctx = vec![0u8; ctx_len];
            let base = pkt.as_ptr() as u64;
            if ctx_len >= 16 {
                put(&mut ctx, DATA, base.wrapping_add(start as u64));
                put(&mut ctx, END, base.wrapping_add(end as u64));
            }
            let r0 = if table {
                t.get(i).unwrap().run(scratch, &mut pkt, &mut ctx)
            } else {
                prog.run_with(scratch, RunInput::ctx(&mut pkt, &mut ctx))
            };
            (r0, pkt, ctx.get(16..).map(<[u8]>::to_vec))
        };
        let want = run(false, &mut scratch);
        assert_eq!(
            run(true, &mut scratch),
            want,
            "{i} {start}..{end} ctx {ctx_len}"
        );
        if (start, end, ctx_len) == (10, 30, CTX_LEN) {
            assert_eq!(want.0, Ok(20 | 11 << 8));
            assert_eq!(want.1[10], 0x77);
        }
    }
}

#[test]
fn guarded_accesses_check_the_window_not_the_buffer() {
    // Unchecked: guarded at run time against the window.
    let src = "ldxdw %r2, [%r1]\nldxb %r0, [%r2+20]\nexit";
    let p = load(src, &env());
    assert!(p.access[1].is_some_and(|a| a.guard && a.region == Region::Packet));
    assert_eq!(
        run_win(src, 10, 30, None).r0,
        Err(RunError::OutOfBounds {
            pc: 1,
            region: Region::Packet,
            offset: 20,
            size: 1
        })
    );
    assert_eq!(run_win(src, 10, 31, None).r0, Ok(30));
    // Before the window's start.
    let before = "ldxdw %r2, [%r1]\nldxb %r0, [%r2-1]\nexit";
    assert_eq!(
        run_win(before, 10, 30, None).r0,
        Err(RunError::OutOfBounds {
            pc: 1,
            region: Region::Packet,
            offset: -1,
            size: 1
        })
    );
    // Stores land in the buffer at the window's offset.
    let r = run_win(
        "ldxdw %r2, [%r1]\nstb [%r2+3], 0xee\nmov %r0, 0\nexit",
        10,
        30,
        None,
    );
    let mut want = buffer();
    want[13] = 0xee;
    assert_eq!(r.pkt, want);
}

#[test]
fn a_bad_window_at_entry_is_an_error() {
    let src = "mov %r0, 1\nexit";
    assert_eq!(
        run_win(src, 30, 10, None).r0,
        Err(RunError::PacketWindow {
            data: 30,
            data_end: 10,
            len: 64
        })
    );
    assert_eq!(
        run_win(src, 0, 65, None).r0,
        Err(RunError::PacketWindow {
            data: 0,
            data_end: 65,
            len: 64
        })
    );
    assert_eq!(
        run_win(src, -1, 10, None).r0,
        Err(RunError::PacketWindow {
            data: -1,
            data_end: 10,
            len: 64
        })
    );
    // A context smaller than the layout.
    let p = load(src, &env());
    let r = run_both::<u64>(&p, &buffer(), &[0; 16], None, |_, _| {}, &[]);
    assert_eq!(r.r0, Err(RunError::CtxTooSmall { len: 16, need: 24 }));
}

#[test]
fn helpers_see_the_whole_buffer_and_may_move_the_window() {
    // The helper gets the whole buffer, not just the window.
    assert_eq!(run_win("call 23\nexit", 10, 30, None).r0, Ok(64));
    // shift(ctx, 4): the reloaded data is 4 bytes further; a guarded
    // access is checked against the new window.
    let src = "mov %r6, %r1\nmov %r2, 4\ncall 20\nldxdw %r2, [%r6]\nldxb %r0, [%r2]\n\
               ldxb %r3, [%r2+15]\nlsh %r3, 8\nor %r0, %r3\nexit";
    let r = run_win(src, 10, 30, None);
    assert_eq!(r.r0, Ok(14 | 29 << 8));
    assert_eq!(get(&r.ctx, DATA), 14);
    let r = run_win(src, 10, 29, None);
    assert_eq!(
        r.r0,
        Err(RunError::OutOfBounds {
            pc: 5,
            region: Region::Packet,
            offset: 15,
            size: 1
        })
    );
    // A window moved out of the buffer is the helper's fault.
    let far = "mov %r2, 100\ncall 20\nmov %r0, 0\nexit";
    assert_eq!(
        run_win(far, 10, 30, None).r0,
        Err(RunError::HelperFault {
            pc: 1,
            id: 20,
            reason: window_fault(110, 30, 64)
        })
    );
    // A helper without the flag must leave the window alone.
    assert_eq!(
        run_win("call 21\nmov %r0, 0\nexit", 10, 30, None).r0,
        Err(RunError::HelperFault {
            pc: 0,
            id: 21,
            reason: UNFLAGGED_WINDOW_CHANGE.into()
        })
    );
}

#[test]
fn helpers_get_the_per_run_state() {
    let src = "mov %r6, %r1\ncall 22\nmov %r1, %r6\ncall 22\nexit";
    let r = run_win(src, 0, 64, Some(&5));
    assert_eq!((r.r0, r.state), (Ok(7), Some(7)));
    let r = run_win(src, 0, 64, None);
    assert_eq!(
        r.r0,
        Err(RunError::HelperFault {
            pc: 1,
            id: 22,
            reason: "no u64 state".into()
        })
    );
    // State of another type is not a u64.
    let p = load(src, &env());
    let whole = |ctx: &mut [u8], base: u64| {
        put(ctx, DATA, base);
        put(ctx, END, base + 64);
    };
    let r = run_both(
        &p,
        &buffer(),
        &[0; CTX_LEN],
        Some(&5u32),
        whole,
        &[DATA, END],
    );
    assert!(matches!(r.r0, Err(RunError::HelperFault { pc: 1, .. })));
    assert_eq!(r.state, Some(5u32));
}

#[test]
fn a_mem_run_after_a_ctx_run_gives_helpers_its_own_packet() {
    let mut reg = HelperRegistry::new();
    reg.register(Helper {
        id: 23,
        name: "len",
        args: [ArgKind::Unused; 5],
        func: buf_len,
        changes_packet: false,
        ret: Default::default(),
    });
    let mem_env = Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: Arc::new(reg),
        budget: DEFAULT_BUDGET,
        maps: Default::default(),
    });
    let mem_prog = load("call 23\nexit", &mem_env);
    let mem_jit = jit::compile(&mem_prog).unwrap();
    for _ in 0..3 {
        // The ctx run leaves its buffer in this thread's scratch state.
        assert_eq!(run_win("call 23\nexit", 10, 30, Some(&1)).r0, Ok(64));
        let mut pkt = [0u8; 7];
        assert_eq!(mem_jit.run(RunInput::mem(&mut pkt)), Ok(7));
        assert_eq!(interp::run(&mem_prog, RunInput::mem(&mut pkt)), Ok(7));
    }
}
