//! The switch's clock: the time workers stamp packets with (nanoseconds;
//! flows' last-used times are its milliseconds) and the time the timeout
//! sweep and `dump-flows` compare them with. One clock for both, or idle
//! ages would be meaningless: the monotonic clock is the scale of
//! [`datapath::dp::clock`], and a switch on devices hands Switchd its own
//! origin ([`super::Plane::clock`]). Tests drive a manual clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use datapath::dp::clock::ns_since;

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub enum Clock {
    /// [`ns_since`]`(start)`: nanoseconds since `start` plus one second,
    /// so that no packet is stamped 0, which flow counters read as "never
    /// used".
    Monotonic(Instant),
    /// Whatever was last set.
    Manual(Arc<AtomicU64>),
}

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
            Clock::Monotonic(start) => ns_since(*start),
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
    use datapath::dp::clock::EPOCH_NS;

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
