//! The switch's clock: the time workers stamp packets with (nanoseconds;
//! flows' last-used times are its milliseconds) and the time the timeout
//! sweep and `dump-flows` compare them with. One clock for both, or idle
//! ages would be meaningless. Tests drive a manual clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub enum Clock {
    /// Nanoseconds since `start` (plus one second, so that no packet is
    /// stamped 0, which flow counters read as "never used").
    Monotonic(Instant),
    /// Whatever was last set.
    Manual(Arc<AtomicU64>),
}

/// The monotonic clock's offset (see [`Clock::Monotonic`]).
const EPOCH_NS: u64 = 1_000_000_000;

impl Clock {
    /// A monotonic clock starting now.
    pub fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    /// A manual clock at `ns`.
    pub fn manual(ns: u64) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(ns)))
    }

    /// Now, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::Monotonic(start) => EPOCH_NS
                .saturating_add(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Now, in milliseconds (the unit of flows' last-used times).
    pub fn now_ms(&self) -> u64 {
        self.now_ns() / 1_000_000
    }

    /// Sets a manual clock (no effect on a monotonic one).
    pub fn set_ns(&self, ns: u64) {
        if let Clock::Manual(t) = self {
            t.store(ns, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_and_monotonic() {
        let m = Clock::manual(5_000_000);
        assert_eq!(m.now_ms(), 5);
        m.clone().set_ns(7_000_000);
        assert_eq!(m.now_ms(), 7);
        let c = Clock::monotonic();
        let a = c.now_ns();
        assert!(a >= EPOCH_NS);
        assert!(c.now_ns() >= a);
        c.set_ns(0);
        assert!(c.now_ns() >= a);
    }
}
