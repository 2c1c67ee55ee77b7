//! Executable arenas: memory that holds JIT-compiled machine code.
//!
//! An arena is created from finished code in one step: an anonymous mapping
//! is made read+write, the code is copied in, the tail of the last page is
//! filled with `int3`, and the whole mapping is switched to read+execute with
//! `mprotect` before anyone can see it. The mapping is never writable and
//! executable at the same time, and it is immutable once `ExecArena::seal`
//! returns. It is unmapped when the last [`Arc`] to it is dropped; every
//! compiled program holds one.
//!
//! Many programs share one arena (see `jit::compile_many`), so small programs
//! cost bytes, not pages.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Byte written into the unused tail of an arena: `int3`, a trap if reached.
const FILL: u8 = 0xcc;

/// A sealed, read+execute mapping holding machine code.
///
/// Addresses are kept as integers so the type is `Send + Sync` without any
/// `unsafe impl`: nothing can write through them, the mapping is immutable.
#[derive(Debug)]
pub struct ExecArena {
    base: usize,
    /// Bytes of code at `base`.
    len: usize,
    /// Bytes mapped (a whole number of pages, at least `len`).
    mapped: usize,
}

/// Arenas are placed, when the address space allows, below this program's
/// own code and within [`NEAR_SPAN`] of it: calls from Rust into JIT code
/// (and back through the trampoline) are then near branches, which the
/// branch predictors of current x86 cores handle measurably faster than
/// calls across the address space. Only a hint to `mmap`: if the range is
/// taken the kernel picks another address and nothing else changes.
const NEAR_SPAN: usize = 1 << 30;
/// Next hint (0 = not started), moving down as arenas are mapped.
static NEXT_HINT: AtomicUsize = AtomicUsize::new(0);

fn near_hint(mapped: usize) -> usize {
    let anchor = (near_hint as *const () as usize) & !0xffff;
    let first = anchor.saturating_sub(64 << 20);
    let r = NEXT_HINT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        let cur = if cur == 0 { first } else { cur };
        let next = cur.checked_sub(mapped)?;
        (anchor - next <= NEAR_SPAN).then_some(next)
    });
    match r {
        Ok(prev) => (if prev == 0 { first } else { prev }) - mapped,
        Err(_) => 0,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl ExecArena {
    /// Maps `code` as a new read+execute arena.
    ///
    /// Only the JIT (`crate::ebpf::jit`) calls this, with code it generated:
    /// whoever jumps into an arena relies on its contents being that code.
    pub(crate) fn seal(code: &[u8]) -> io::Result<Arc<ExecArena>> {
        if code.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an executable arena needs at least one byte of code",
            ));
        }
        let page = page_size();
        let mapped = code
            .len()
            .checked_add(page - 1)
            .map(|n| n / page * page)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("code of {} bytes is too large to map", code.len()),
                )
            })?;
        let hint = near_hint(mapped);
        // A fresh anonymous private mapping; the result is checked below.
        // SAFETY: without MAP_FIXED the address is only a hint: the kernel never replaces a mapping.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let arena = ExecArena {
            base: p as usize,
            len: code.len(),
            mapped,
        };
        // From here on, dropping `arena` unmaps the memory on every error path.
        let dst = p.cast::<u8>();
        // `dst` starts a read+write mapping of `mapped` >= `code.len()` bytes that nothing else uses.
        // SAFETY: in bounds, and a live slice cannot overlap a mapping made just now.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len()) };
        // SAFETY: `[code.len(), mapped)` lies inside the same writable mapping.
        unsafe { std::ptr::write_bytes(dst.add(code.len()), FILL, mapped - code.len()) };
        // SAFETY: changes the protection of exactly the mapping made above;
        // from now on it is read+execute and never written again.
        let rc = unsafe { libc::mprotect(p, mapped, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(arena))
    }

    /// The machine code in this arena.
    pub fn code(&self) -> &[u8] {
        // SAFETY: `base` is a readable (read+execute) mapping of at least `len`
        // bytes that is never written after `seal` and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.base as *const u8, self.len) }
    }

    /// Address of the first byte of code.
    pub fn base_addr(&self) -> usize {
        self.base
    }

    /// Bytes of code.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an arena holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of address space mapped for this arena (whole pages).
    pub fn mapped_bytes(&self) -> usize {
        self.mapped
    }
}

impl Drop for ExecArena {
    fn drop(&mut self) {
        // Running code holds an `ExecEntry`, which holds the `Arc`: none can run any more.
        // SAFETY: `base`/`mapped` are exactly the mapping `seal` made, and this is its last owner.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.mapped);
        }
    }
}

/// A program body in an arena, checked to lie inside the arena's code.
/// Keeps the arena alive.
#[derive(Debug, Clone)]
pub struct ExecEntry {
    arena: Arc<ExecArena>,
    body: usize,
    body_len: usize,
    /// `arena.base_addr() + body`.
    addr: usize,
}

impl ExecEntry {
    /// `body`/`body_len`: the program's code. `None` if it lies outside the
    /// arena.
    ///
    /// Only the JIT creates entries, with offsets of code it generated.
    pub(crate) fn new(arena: Arc<ExecArena>, body: usize, body_len: usize) -> Option<ExecEntry> {
        let end = body.checked_add(body_len)?;
        if body_len == 0 || end > arena.len() {
            return None;
        }
        Some(ExecEntry {
            addr: arena.base_addr() + body,
            arena,
            body,
            body_len,
        })
    }

    pub fn arena(&self) -> &Arc<ExecArena> {
        &self.arena
    }

    /// The program body's machine code (without the shared entry routine).
    pub fn body_code(&self) -> &[u8] {
        self.arena
            .code()
            .get(self.body..self.body + self.body_len)
            .unwrap_or(&[])
    }

    pub(crate) fn body_addr(&self) -> usize {
        self.addr
    }
}

/// Program bodies by number, for callers that keep one per flow in a dense
/// array: each body's address in 8 bytes (0 for none), with the arenas
/// that hold them kept alive by the table. Only made from [`ExecEntry`]s,
/// so every address is a checked body start.
#[derive(Debug, Default)]
pub struct CodeTable {
    /// Keep the code mapped; never read.
    _arenas: Vec<Arc<ExecArena>>,
    addrs: Box<[usize]>,
}

/// One body of a [`CodeTable`], borrowed from it (so its arena is alive).
#[derive(Debug, Clone, Copy)]
pub struct CodeRef<'a> {
    addr: usize,
    _table: PhantomData<&'a CodeTable>,
}

impl CodeRef<'_> {
    /// The body's first byte.
    #[inline]
    pub fn body_addr(&self) -> usize {
        self.addr
    }
}

impl CodeTable {
    /// A table of `entries`' bodies, by position (`None`: no body).
    pub(crate) fn new<'a>(entries: impl IntoIterator<Item = Option<&'a ExecEntry>>) -> CodeTable {
        let mut arenas: Vec<Arc<ExecArena>> = Vec::new();
        let addrs = entries
            .into_iter()
            .map(|e| {
                let Some(e) = e else { return 0 };
                // Programs compiled together share an arena: keep each once
                // (they arrive grouped).
                if !arenas.iter().rev().any(|a| Arc::ptr_eq(a, &e.arena)) {
                    arenas.push(Arc::clone(&e.arena));
                }
                e.addr
            })
            .collect();
        CodeTable {
            _arenas: arenas,
            addrs,
        }
    }

    /// Body `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<CodeRef<'_>> {
        let addr = self.addrs.get(i).copied().filter(|&a| a != 0)?;
        Some(CodeRef {
            addr,
            _table: PhantomData,
        })
    }

    /// Where body `i`'s address is kept, for prefetching.
    #[inline]
    pub fn slot(&self, i: usize) -> Option<&usize> {
        self.addrs.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_copies_code_and_pads_with_int3() {
        let a = ExecArena::seal(&[0x90, 0x90, 0xc3]).unwrap();
        assert_eq!(a.code(), &[0x90, 0x90, 0xc3]);
        assert_eq!(a.len(), 3);
        assert!(a.mapped_bytes() >= 3);
        assert_eq!(a.mapped_bytes() % page_size(), 0);
    }

    #[test]
    fn empty_code_is_rejected() {
        assert!(ExecArena::seal(&[]).is_err());
    }

    #[test]
    fn entry_offsets_are_checked() {
        let a = ExecArena::seal(&[0xc3; 16]).unwrap();
        assert!(ExecEntry::new(a.clone(), 8, 8).is_some());
        assert!(ExecEntry::new(a.clone(), 16, 1).is_none());
        assert!(ExecEntry::new(a.clone(), 8, 9).is_none());
        assert!(ExecEntry::new(a.clone(), 0, 0).is_none());
        assert!(ExecEntry::new(a, usize::MAX, 2).is_none());
    }
}
