//! The switch's monotonic time scale: nanoseconds since an origin
//! [`Instant`], plus one second.
//!
//! Why the offset: flow counters read a last-used time of 0 as "never
//! used", so no real packet may be stamped 0, not even one that arrives
//! in the first nanosecond. The switch runtime ([`super::switch`]) stamps
//! packets with [`ns_since`] of its origin, and the controller's clock
//! (idle timeouts, idle ages) reads the same function of the same origin,
//! so the two agree to the nanosecond.

use std::time::Instant;

/// What [`ns_since`] adds to the time elapsed since the origin.
pub const EPOCH_NS: u64 = 1_000_000_000;

/// Now on the scale that starts at `origin`: `EPOCH_NS` + the nanoseconds
/// elapsed since it (saturating), never 0.
pub fn ns_since(origin: Instant) -> u64 {
    EPOCH_NS.saturating_add(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_offset_and_grows() {
        let o = Instant::now();
        let a = ns_since(o);
        assert!(a >= EPOCH_NS);
        assert!(ns_since(o) >= a);
    }
}
