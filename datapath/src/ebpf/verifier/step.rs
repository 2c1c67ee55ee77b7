//! Transfer functions for ALU instructions (including pointer arithmetic),
//! conditional jumps and helper calls.

use super::error::Reason;
use super::mem::{self, read, set};
use super::refine::{self, Rel};
use super::scalar::{self, Scalar};
use super::state::{Ptr, PtrKind, Reg, State, VarOff};
use crate::ebpf::helpers::{ArgKind, Helper, HelperRegistry, RetKind};
use crate::ebpf::insn::{AluOp, Cond, EndKind, Src};
use crate::ebpf::maps::Maps;

fn operand(st: &State, src: Src) -> Result<Reg, Reason> {
    match src {
        Src::Imm(i) => Ok(Reg::Scalar(Scalar::constant(i64::from(i) as u64))),
        Src::Reg(r) => read(st, r),
    }
}

fn src_reg(src: Src, dst: u8) -> u8 {
    match src {
        Src::Reg(r) => r,
        Src::Imm(_) => dst,
    }
}

fn op_name(op: AluOp, wide: bool) -> &'static str {
    let n = crate::ebpf::disasm::alu_name(op);
    if wide {
        n
    } else {
        match op {
            AluOp::Mov => "32-bit mov",
            AluOp::MovSx(_) => "32-bit movsx",
            _ => "32-bit arithmetic",
        }
    }
}

/// `p + s` for a pointer and a scalar, computed by the `add` at slot `pc`.
/// A packet pointer plus a non-constant scalar gets a fresh variable part
/// (see [`VarOff`]) named after `pc`.
fn ptr_add(st: &mut State, pc: usize, p: &Ptr, s: &Scalar) -> Reg {
    if p.kind == PtrKind::Packet && p.lo == 0 && p.hi == 0 && s.pkt_len {
        // Packet start plus packet length: the packet end.
        return Reg::Ptr(Ptr::at(PtrKind::PacketEnd, 0));
    }
    let mut q = p.moved(i128::from(s.smin), i128::from(s.smax));
    if p.kind == PtrKind::Packet && s.as_const().is_none() && q.bounded() {
        let id = u32::try_from(pc).map_or(u32::MAX, |v| v.saturating_add(1));
        st.drop_var(id);
        q.var = Some(VarOff {
            id,
            off: 0,
            range: VarOff::NOTHING,
        });
    }
    Reg::Ptr(q)
}

/// Can a pointer of this kind move by a scalar? Not the packet end, not a
/// map handle or an unchecked lookup result.
fn movable(kind: PtrKind) -> bool {
    !matches!(
        kind,
        PtrKind::PacketEnd | PtrKind::MapHandle { .. } | PtrKind::MapValueOrNull { .. }
    )
}

/// `p - q` for two pointers into the same region, if they are. Never for
/// map pointers: two values of a map have different bases.
fn ptr_diff(p: &Ptr, q: &Ptr) -> Option<Scalar> {
    use PtrKind::{Packet, PacketEnd};
    if p.kind.is_map() || q.kind.is_map() {
        return None;
    }
    match (p.kind, q.kind) {
        (a, b) if a == b && p.bounded() && q.bounded() => Some(Scalar::srange(
            p.lo.saturating_sub(q.hi),
            p.hi.saturating_sub(q.lo),
        )),
        (Packet, PacketEnd) | (PacketEnd, Packet) | (PacketEnd, PacketEnd) | (Packet, Packet) => {
            Some(Scalar::UNKNOWN)
        }
        (a, b) if a == b => Some(Scalar::UNKNOWN),
        _ => None,
    }
}

/// `dst = dst OP src` at slot `pc`.
pub fn alu(
    st: &mut State,
    pc: usize,
    wide: bool,
    op: AluOp,
    dst: u8,
    src: Src,
) -> Result<(), Reason> {
    let b = operand(st, src)?;
    let blame_src = |kind| Reason::PointerArithmetic {
        op: op_name(op, wide),
        reg: src_reg(src, dst),
        kind,
    };
    match op {
        AluOp::Mov | AluOp::MovSx(_) => {
            let v = match b {
                _ if wide && op == AluOp::Mov => b,
                Reg::Scalar(s) => Reg::Scalar(scalar::alu(op, wide, &Scalar::UNKNOWN, &s)),
                Reg::Ptr(p) => return Err(blame_src(p.kind)),
                _ => {
                    return Err(Reason::UninitRegister {
                        reg: src_reg(src, dst),
                    })
                }
            };
            set(st, dst, v);
            return Ok(());
        }
        _ => {}
    }
    let a = read(st, dst)?;
    let blame_dst = |kind| Reason::PointerArithmetic {
        op: op_name(op, wide),
        reg: dst,
        kind,
    };
    let v = match (a, b) {
        (Reg::Scalar(x), Reg::Scalar(y)) => Reg::Scalar(scalar::alu(op, wide, &x, &y)),
        (Reg::Ptr(p), Reg::Scalar(s)) | (Reg::Scalar(s), Reg::Ptr(p))
            if wide && op == AluOp::Add && movable(p.kind) =>
        {
            ptr_add(st, pc, &p, &s)
        }
        (Reg::Ptr(p), Reg::Scalar(s)) if wide && op == AluOp::Sub && movable(p.kind) => {
            Reg::Ptr(p.moved(-i128::from(s.smax), -i128::from(s.smin)))
        }
        (Reg::Ptr(p), Reg::Ptr(q)) if wide && op == AluOp::Sub => match ptr_diff(&p, &q) {
            Some(s) => Reg::Scalar(s),
            None => return Err(blame_src(q.kind)),
        },
        (Reg::Ptr(p), _) => return Err(blame_dst(p.kind)),
        (_, Reg::Ptr(q)) => return Err(blame_src(q.kind)),
        _ => return Err(Reason::UninitRegister { reg: dst }),
    };
    set(st, dst, v);
    Ok(())
}

/// `dst = -dst`.
pub fn neg(st: &mut State, wide: bool, dst: u8) -> Result<(), Reason> {
    match read(st, dst)? {
        Reg::Scalar(s) => {
            set(st, dst, Reg::Scalar(scalar::neg(wide, &s)));
            Ok(())
        }
        Reg::Ptr(p) => Err(Reason::PointerArithmetic {
            op: "neg",
            reg: dst,
            kind: p.kind,
        }),
        _ => Err(Reason::UninitRegister { reg: dst }),
    }
}

/// Byte-order conversion of dst.
pub fn end(st: &mut State, kind: EndKind, bits: u8, dst: u8) -> Result<(), Reason> {
    match read(st, dst)? {
        Reg::Scalar(s) => {
            set(st, dst, Reg::Scalar(scalar::end(kind, bits, &s)));
            Ok(())
        }
        Reg::Ptr(p) => Err(Reason::PointerArithmetic {
            op: "byte swap",
            reg: dst,
            kind: p.kind,
        }),
        _ => Err(Reason::UninitRegister { reg: dst }),
    }
}

/// Raises the proven packet length from a refined packet-length scalar.
fn note_len(st: &mut State, s: &Scalar) {
    if s.pkt_len {
        st.pkt_min = st.pkt_min.max(s.umin);
    }
}

/// The edge of a scalar comparison where `(ra, rb)` hold.
fn scalar_edge(
    mut st: State,
    dst: u8,
    src: Src,
    refined: Option<(Scalar, Scalar)>,
) -> Option<State> {
    let (ra, rb) = refined?;
    match src {
        Src::Reg(r) if r == dst => {
            let both = ra.intersect(&rb)?;
            set(&mut st, dst, Reg::Scalar(both));
            note_len(&mut st, &both);
        }
        Src::Reg(r) => {
            set(&mut st, dst, Reg::Scalar(ra));
            set(&mut st, r, Reg::Scalar(rb));
            note_len(&mut st, &ra);
            note_len(&mut st, &rb);
        }
        Src::Imm(_) => {
            set(&mut st, dst, Reg::Scalar(ra));
            note_len(&mut st, &ra);
        }
    }
    Some(st)
}

/// The packet pointer of a comparison with the packet end, and the
/// relation as `pkt REL end`.
fn pkt_vs_end<'p>(rel: Rel, p: &'p Ptr, q: &'p Ptr) -> Option<(&'p Ptr, Rel)> {
    match (p.kind, q.kind) {
        (PtrKind::Packet, PtrKind::PacketEnd) => Some((p, rel)),
        (PtrKind::PacketEnd, PtrKind::Packet) => Some((q, rel.swap())),
        _ => None,
    }
}

/// How many bytes past `pkt` a comparison `pkt REL end` proves to exist
/// (`pkt + n <= end`) on the edge where it holds.
fn proven_past(rel: Rel) -> Option<i64> {
    match rel {
        // pkt < end: pkt + 1 <= end.
        Rel::Lt => Some(1),
        // pkt <= end (or ==).
        Rel::Le | Rel::Eq => Some(0),
        _ => None,
    }
}

/// The packet length a pointer comparison proves on the edge where
/// `p REL q` holds (kernel-style `pkt + N > pkt_end` checks).
fn pkt_bound(rel: Rel, p: &Ptr, q: &Ptr) -> Option<u64> {
    let (pkt, rel) = pkt_vs_end(rel, p, q)?;
    if !pkt.bounded() {
        return None;
    }
    let lo = pkt.lo.max(0) as u64;
    proven_past(rel).map(|n| lo + n as u64)
}

/// Applies what `p REL q` proves to the state on the edge where it holds:
/// the packet's minimum length, and the range of a variable packet offset.
fn note_pkt_cmp(st: &mut State, rel: Rel, p: &Ptr, q: &Ptr) {
    if let Some(n) = pkt_bound(rel, p, q) {
        st.pkt_min = st.pkt_min.max(n);
    }
    if let Some((pkt, rel)) = pkt_vs_end(rel, p, q) {
        if let (Some(v), Some(n)) = (pkt.var, proven_past(rel)) {
            // V + off + n <= len.
            if let Some(range) = v.off.checked_add(n) {
                st.prove_var(v.id, range);
            }
        }
    }
}

/// The states on the taken and fall-through edges of `if dst COND src goto`;
/// `None` for an edge that can never be followed.
pub fn jump(
    st: State,
    wide: bool,
    cond: Cond,
    dst: u8,
    src: Src,
) -> Result<(Option<State>, Option<State>), Reason> {
    let a = read(&st, dst)?;
    let b = operand(&st, src)?;
    match (a, b) {
        // The null check of a lookup result: 0 on one edge, a pointer to
        // the value on the other (with every copy of it).
        (Reg::Ptr(p), Reg::Scalar(s)) | (Reg::Scalar(s), Reg::Ptr(p))
            if wide
                && matches!(cond, Cond::Eq | Cond::Ne)
                && s.as_const() == Some(0)
                && matches!(p.kind, PtrKind::MapValueOrNull { .. }) =>
        {
            let reg = if matches!(a, Reg::Ptr(_)) {
                dst
            } else {
                src_reg(src, dst)
            };
            let mut null = st.clone();
            let mut valid = st;
            null.null_checked(reg, p.kind, true);
            valid.null_checked(reg, p.kind, false);
            Ok(if cond == Cond::Eq {
                (Some(null), Some(valid))
            } else {
                (Some(valid), Some(null))
            })
        }
        (Reg::Scalar(x), Reg::Scalar(y)) => {
            let (taken, fall) = refine::branch(cond, wide, &x, &y);
            let t = scalar_edge(st.clone(), dst, src, taken);
            let f = scalar_edge(st, dst, src, fall);
            Ok((t, f))
        }
        (Reg::Ptr(p), Reg::Ptr(q)) if wide && comparable(cond, &p, &q) => {
            let rel = Rel::of(cond);
            let mut t = st.clone();
            let mut f = st;
            note_pkt_cmp(&mut t, rel, &p, &q);
            note_pkt_cmp(&mut f, rel.negate(), &p, &q);
            Ok((Some(t), Some(f)))
        }
        // A null check: no pointer is null, in either engine (a map handle
        // may be 0 and is never compared).
        (Reg::Ptr(p), Reg::Scalar(s)) | (Reg::Scalar(s), Reg::Ptr(p))
            if wide
                && matches!(cond, Cond::Eq | Cond::Ne)
                && s.as_const() == Some(0)
                && p.bounded()
                && !matches!(p.kind, PtrKind::MapHandle { .. }) =>
        {
            Ok((Some(st.clone()), Some(st)))
        }
        (Reg::Ptr(p), other) => Err(Reason::PointerComparison {
            reg: dst,
            kind: p.kind,
            other: describe(&p, &other, wide, cond),
        }),
        (other, Reg::Ptr(q)) => Err(Reason::PointerComparison {
            reg: src_reg(src, dst),
            kind: q.kind,
            other: describe(&q, &other, wide, cond),
        }),
        _ => Err(Reason::UninitRegister { reg: dst }),
    }
}

/// Can `p COND q` be decided without knowing where the engine put the
/// memory? Yes for pointers into the same region (and stack frame), or the
/// packet and its end: equality always, order when neither offset is so
/// large that the address could wrap around.
fn comparable(cond: Cond, p: &Ptr, q: &Ptr) -> bool {
    use PtrKind::{Packet, PacketEnd};
    if p.kind.is_map() || q.kind.is_map() {
        return false;
    }
    let same =
        p.kind == q.kind || matches!((p.kind, q.kind), (Packet, PacketEnd) | (PacketEnd, Packet));
    match cond {
        Cond::Set => false,
        Cond::Eq | Cond::Ne => same,
        _ => same && p.bounded() && q.bounded(),
    }
}

/// What a pointer was compared with, for [`Reason::PointerComparison`].
fn describe(this: &Ptr, other: &Reg, wide: bool, cond: Cond) -> &'static str {
    match other {
        _ if !wide => "a 32-bit comparison",
        _ if cond == Cond::Set => "jset",
        _ if !this.bounded() => "its offset unknown",
        Reg::Ptr(q) if !q.bounded() => "a pointer of unknown offset",
        Reg::Scalar(_) => "a scalar other than a null check",
        _ => "a pointer into another region",
    }
}

/// What a pointer is, for [`Reason::HelperArg`].
fn kind_name(kind: PtrKind) -> &'static str {
    match kind {
        PtrKind::Ctx => "a ctx pointer",
        PtrKind::Stack { .. } => "a stack pointer",
        PtrKind::Packet => "a packet pointer",
        PtrKind::PacketEnd => "a packet-end pointer",
        PtrKind::MapHandle { .. } => "a map handle",
        PtrKind::MapValue { .. } => "a map value pointer",
        PtrKind::MapValueOrNull { .. } => "an unchecked map lookup result",
    }
}

/// Checks the arguments of the helper call at slot `pc` and applies its
/// effect on the registers: r0 = unknown scalar (or the lookup result),
/// r1..r5 clobbered; after a helper that changes the packet, no packet
/// pointer survives.
pub fn helper_call(st: &mut State, h: &Helper, maps: &Maps, pc: usize) -> Result<(), Reason> {
    // The map of the call's `MapHandle` argument.
    let mut map: Option<u32> = None;
    for (i, kind) in h.args.iter().enumerate() {
        let r = i as u8 + 1;
        let bad = |actual| Reason::HelperArg {
            id: h.id,
            name: h.name,
            arg: r,
            expected: *kind,
            actual,
        };
        match kind {
            ArgKind::Unused => {}
            ArgKind::Any => {
                read(st, r)?;
            }
            ArgKind::Scalar => {
                if let Reg::Ptr(p) = read(st, r)? {
                    return Err(bad(kind_name(p.kind)));
                }
            }
            ArgKind::Ctx => match read(st, r)? {
                Reg::Ptr(p) if p.kind == PtrKind::Ctx && p.lo == 0 && p.hi == 0 => {}
                Reg::Ptr(p) if p.kind == PtrKind::Ctx => {
                    return Err(bad("a ctx pointer with a non-zero offset"))
                }
                Reg::Ptr(p) => return Err(bad(kind_name(p.kind))),
                _ => return Err(bad("a scalar")),
            },
            ArgKind::MapHandle => match read(st, r)? {
                Reg::Ptr(Ptr {
                    kind: PtrKind::MapHandle { map: m },
                    ..
                }) => map = Some(m),
                Reg::Ptr(p) => return Err(bad(kind_name(p.kind))),
                _ => return Err(bad("a scalar")),
            },
            ArgKind::MapKey | ArgKind::MapValue => {
                let def = map.and_then(|m| maps.def(m)).ok_or(Reason::NoMapArg {
                    id: h.id,
                    name: h.name,
                })?;
                let size = if *kind == ArgKind::MapKey {
                    def.key_size
                } else {
                    def.value_size
                };
                mem::mem_arg(st, maps, r, size)?;
            }
        }
    }
    for r in 1..=5 {
        set(st, r, Reg::Uninit);
    }
    if h.changes_packet {
        st.forget_packet();
    }
    let r0 = match (h.ret, map) {
        (RetKind::MapValueOrNull, Some(map)) => {
            let id = u32::try_from(pc).map_or(u32::MAX, |v| v.saturating_add(1));
            st.drop_lookup_id(id);
            Reg::Ptr(Ptr::at(PtrKind::MapValueOrNull { map, id }, 0))
        }
        (RetKind::MapValueOrNull, None) => {
            return Err(Reason::NoMapArg {
                id: h.id,
                name: h.name,
            })
        }
        (RetKind::Scalar, _) => Reg::Scalar(Scalar::UNKNOWN),
    };
    set(st, 0, r0);
    Ok(())
}

/// The helper a `callx` register must name: a known constant id.
pub fn callx_target<'h>(
    st: &State,
    helpers: &'h HelperRegistry,
    reg: u8,
) -> Result<&'h Helper, Reason> {
    let Reg::Scalar(s) = read(st, reg)? else {
        return Err(Reason::CallxNotConstant { reg });
    };
    let value = s.as_const().ok_or(Reason::CallxNotConstant { reg })?;
    u32::try_from(value)
        .ok()
        .and_then(|id| helpers.get(id))
        .ok_or(Reason::CallxUnknownHelper { reg, value })
}
