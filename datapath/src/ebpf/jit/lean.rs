//! Lean tables: many lean programs' entries in 8 bytes each, for a caller
//! that runs one of them per packet, picked by number.
//!
//! Why: the pipeline's cache-hit path runs one flow program per packet,
//! picked among up to 100,000. A [`JitProgram`] is a few cache lines of
//! run-time options, most of which a lean program does not use; at that
//! scale reaching it costs a cache miss, and on a large table a TLB miss,
//! per packet before the code's own. A [`LeanTable`] keeps only each
//! program's code address (eight to a cache line, 512 to a page) and what
//! all of them share: the budget and where the context keeps the packet
//! window.
//!
//! Design: [`LeanTable::new`] takes an entry for each program that
//! [`JitProgram::lean_entry`] says is lean (context entry; no helpers,
//! guards, loops, local calls or stack zeroing: its code never touches the
//! `VmCtx`) and has the same budget and context layout as the first such
//! program; the others have none. [`LeanRef::run`] makes the checks of the
//! lean entry of [`JitProgram::run_with`] (the context is large enough,
//! the window it describes lies in the packet buffer) and calls the code:
//! a run gives the same r0, or the same error, as `run_with`. The code
//! stays mapped as long as the table (its arenas are kept by the
//! [`CodeTable`]).

#[cfg(target_arch = "x86_64")]
use super::run_error;
use super::{JitProgram, JitScratch};
use crate::ebpf::vm::RunError;
#[cfg(target_arch = "x86_64")]
use crate::sys::exec::{CodeRef, CodeTable};
#[cfg(target_arch = "x86_64")]
use crate::sys::jitcall;

/// What the programs of a table share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LeanAbi {
    budget: u64,
    /// The context layout's size.
    ctx_size: usize,
    /// Offsets of `data` and `data_end` in the context.
    data_off: usize,
    end_off: usize,
}

/// Lean programs' entries by number (see the `jit::lean` module docs).
#[derive(Debug, Default)]
pub struct LeanTable {
    #[cfg(target_arch = "x86_64")]
    code: CodeTable,
    abi: Option<LeanAbi>,
    /// Entries that have code.
    count: usize,
    len: usize,
}

/// One entry of a [`LeanTable`].
#[derive(Debug, Clone, Copy)]
pub struct LeanRef<'a> {
    #[cfg(target_arch = "x86_64")]
    code: CodeRef<'a>,
    abi: LeanAbi,
    #[cfg(not(target_arch = "x86_64"))]
    _table: std::marker::PhantomData<&'a LeanTable>,
}

impl LeanAbi {
    /// Checks what a lean entry checks before it calls the code: `ctx` is
    /// large enough, and the packet window it describes lies in `pkt`.
    #[inline(always)]
    pub(super) fn check(&self, pkt: &[u8], ctx: &[u8]) -> Result<(), RunError> {
        if ctx.len() < self.ctx_size {
            return Err(RunError::CtxTooSmall {
                len: ctx.len(),
                need: self.ctx_size,
            });
        }
        let word = |off: usize| {
            ctx.get(off..)
                .and_then(|b| b.first_chunk::<8>())
                .map_or(0, |b| u64::from_le_bytes(*b))
        };
        let base = pkt.as_ptr() as u64;
        let (s, e) = (
            word(self.data_off).wrapping_sub(base),
            word(self.end_off).wrapping_sub(base),
        );
        if s > e || e > pkt.len() as u64 {
            // As offsets from the buffer start, as the general entry
            // reports them.
            return Err(RunError::PacketWindow {
                data: s as i64,
                data_end: e as i64,
                len: pkt.len(),
            });
        }
        Ok(())
    }
}

impl JitProgram {
    /// The budget and context layout the program runs with.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn abi(&self) -> LeanAbi {
        let n = &self.native;
        LeanAbi {
            budget: n.budget,
            ctx_size: n.ctx_size,
            data_off: n.window_offs.0,
            end_off: n.window_offs.1,
        }
    }

    /// What running the program needs if it is lean.
    #[cfg(target_arch = "x86_64")]
    fn lean_abi(&self) -> Option<LeanAbi> {
        let n = &self.native;
        (n.lean && !n.helper_calls).then(|| self.abi())
    }
}

impl LeanTable {
    /// A table with a position for each of `programs`: an entry where the
    /// program is lean and shares the first lean program's budget and
    /// context layout, none elsewhere.
    pub fn new<'a>(programs: impl IntoIterator<Item = Option<&'a JitProgram>>) -> LeanTable {
        #[cfg(target_arch = "x86_64")]
        {
            let mut abi = None;
            let mut count = 0;
            let mut len = 0;
            let code = CodeTable::new(programs.into_iter().map(|p| {
                len += 1;
                let p = p?;
                let a = p.lean_abi()?;
                if *abi.get_or_insert(a) != a {
                    return None;
                }
                count += 1;
                Some(&p.native.entry)
            }));
            LeanTable {
                code,
                abi,
                count,
                len,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            LeanTable {
                abi: None,
                count: 0,
                len: programs.into_iter().count(),
            }
        }
    }

    /// Program `i`'s entry, if it has one.
    #[inline]
    pub fn get(&self, i: u32) -> Option<LeanRef<'_>> {
        #[cfg(target_arch = "x86_64")]
        {
            Some(LeanRef {
                code: self.code.get(i as usize)?,
                abi: self.abi?,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = i;
            None
        }
    }

    /// Where program `i`'s entry is kept (whether or not it has one), for
    /// prefetching: the address of a reference, not a read.
    #[inline]
    pub fn slot(&self, i: u32) -> Option<&usize> {
        #[cfg(target_arch = "x86_64")]
        {
            self.code.slot(i as usize)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = i;
            None
        }
    }

    /// Positions, with or without an entry.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions with an entry.
    pub fn count(&self) -> usize {
        self.count
    }
}

impl LeanRef<'_> {
    /// Where the program's machine code starts, for prefetching.
    #[inline]
    pub fn code_addr(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            self.code.body_addr()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    }

    /// Runs the program with `ctx` as its context, whose `data` /
    /// `data_end` must describe a window of `pkt`; returns r0.
    #[inline(always)]
    pub fn run(
        &self,
        scratch: &mut JitScratch,
        pkt: &mut [u8],
        ctx: &mut [u8],
    ) -> Result<u64, RunError> {
        let a = self.abi;
        a.check(pkt, ctx)?;
        #[cfg(target_arch = "x86_64")]
        {
            jitcall::enter_ref_ctx_lean(self.code, &mut scratch.state, pkt, ctx, a.budget)
                .or_else(run_error)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = scratch;
            Err(RunError::CtxTooSmall { len: 0, need: 0 })
        }
    }
}
