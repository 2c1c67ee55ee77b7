//! Cache prefetch hints: the worker asks for the memory a packet will need
//! (its program, its code, its counters) while it still prepares the rest
//! of the batch, so that the cache misses of a large table overlap instead
//! of stalling one packet after the other.
//!
//! A prefetch is only a hint: it never faults (any address may be given),
//! changes no memory and no program-visible state, so the function is safe
//! to call with any pointer. Elsewhere it does nothing.

/// Hints the CPU to bring the cache line at `p` into all cache levels.
#[inline(always)]
pub fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // `prefetcht0` is a hint that never faults, whatever the address,
        // and neither reads into registers nor writes memory; SSE, the
        // feature it needs, is part of the x86-64 baseline.
        // SAFETY: by the reasons just given.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
