//! Token-bucket meters (`meters:` in the switch file, the `meter` action).
//!
//! # What?
//!
//! A meter admits a packet when its bucket holds enough credit for the
//! packet's bytes and takes that credit; otherwise the packet is dropped.
//! Credit flows in at `rate_kbps` (1 kbps = 1,000 bit/s) up to the bucket's
//! size, `burst_kb` (1 kB = 1,000 bytes, like the k of kbps). The bucket
//! starts full. Time is passed in (nanoseconds, any monotonic scale), so
//! `flowswitch trace` and the tests are deterministic.
//!
//! # Exact arithmetic
//!
//! Credit is counted in micro-bits: in `dt` nanoseconds a meter of `r` kbps
//! earns `r × 1000 × dt / 10⁹` bits, that is exactly `r × dt` micro-bits,
//! an integer. A byte costs 8 × 10⁶ micro-bits. No division, no floats,
//! nothing lost to rounding: a meter of 1 kbps admits a 125-byte packet
//! exactly 1 s after the bucket ran dry, not a nanosecond earlier. The
//! bucket holds at most [`MAX_CREDIT`] (a burst of about 1.15 × 10⁹ kB;
//! bigger bursts are clamped to it).
//!
//! # Shared by all workers, without a lock
//!
//! Two atomics: the credit and the time up to which credit has been added.
//! A packet first tries to claim the interval since that time with one
//! compare-and-swap of the time (the winner, and only it, adds the
//! interval's credit), then takes its cost from the credit with a
//! compare-and-swap loop. Every nanosecond is credited once, so the rate
//! holds however the workers interleave. A packet whose time is not later
//! than the last refill skips the refill: workers that read the clock once
//! per batch refill once per batch, not once per packet. (Refilling lazily,
//! only when the credit falls short, would be cheaper still but not exact:
//! credit earned while the bucket was full would escape the cap.)
//! Under contention a packet may be refused while another worker is about
//! to add credit; a single worker, or any worker with injected time, sees
//! the exact bucket.

use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// Micro-bits per byte.
pub const UNITS_PER_BYTE: u64 = 8_000_000;
/// Micro-bits per kB of burst (1,000 bytes).
pub const UNITS_PER_KB: u64 = 1_000 * UNITS_PER_BYTE;
/// Most credit a bucket holds, in micro-bits (half the u64 range, so that
/// adding a refill to a full bucket cannot overflow).
pub const MAX_CREDIT: u64 = u64::MAX / 2;

/// A meter that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MeterError {
    #[error("meter rate {rate_kbps} kbps: must be at least 1")]
    ZeroRate { rate_kbps: u64 },
    #[error("meter burst {burst_kb} kB: must be at least 1")]
    ZeroBurst { burst_kb: u64 },
}

/// One token bucket; see the [module docs](self).
#[derive(Debug)]
pub struct Meter {
    rate_kbps: u64,
    burst_kb: u64,
    /// Bucket size in micro-bits.
    capacity: u64,
    /// Credit in micro-bits, at most `capacity`.
    credit: AtomicU64,
    /// Credit has been added for all time before this (ns).
    filled_to: AtomicU64,
}

impl Meter {
    /// A full bucket of `burst_kb` kB filling at `rate_kbps`.
    pub fn new(rate_kbps: u64, burst_kb: u64) -> Result<Self, MeterError> {
        if rate_kbps == 0 {
            return Err(MeterError::ZeroRate { rate_kbps });
        }
        if burst_kb == 0 {
            return Err(MeterError::ZeroBurst { burst_kb });
        }
        let capacity = burst_kb.saturating_mul(UNITS_PER_KB).min(MAX_CREDIT);
        Ok(Meter {
            rate_kbps,
            burst_kb,
            capacity,
            credit: AtomicU64::new(capacity),
            filled_to: AtomicU64::new(0),
        })
    }

    pub fn rate_kbps(&self) -> u64 {
        self.rate_kbps
    }

    pub fn burst_kb(&self) -> u64 {
        self.burst_kb
    }

    /// Credit now in the bucket, in whole bytes (after a refill to `now_ns`).
    pub fn available_bytes(&self, now_ns: u64) -> u64 {
        self.refill(now_ns);
        self.credit.load(Ordering::Relaxed) / UNITS_PER_BYTE
    }

    /// Whether a packet of `bytes` bytes arriving at `now_ns` conforms; if
    /// so its cost is taken from the bucket.
    #[inline]
    pub fn admit(&self, bytes: usize, now_ns: u64) -> bool {
        self.refill(now_ns);
        let cost = (bytes as u64).saturating_mul(UNITS_PER_BYTE);
        self.credit
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(cost))
            .is_ok()
    }

    /// Adds the credit earned since `filled_to`, unless no time passed or
    /// another packet claims the interval first.
    #[inline]
    fn refill(&self, now_ns: u64) {
        let from = self.filled_to.load(Ordering::Acquire);
        if now_ns <= from {
            return;
        }
        if self
            .filled_to
            .compare_exchange(from, now_ns, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let earned = u128::from(now_ns - from) * u128::from(self.rate_kbps);
        let earned = earned.min(u128::from(self.capacity)) as u64;
        let cap = self.capacity;
        // Never fails: the closure always returns Some.
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| {
                Some(c.saturating_add(earned).min(cap))
            });
    }
}

impl Meter {
    /// A separate meter in the same state (credit and refill time).
    fn snapshot(&self) -> Meter {
        Meter {
            rate_kbps: self.rate_kbps,
            burst_kb: self.burst_kb,
            capacity: self.capacity,
            credit: AtomicU64::new(self.credit.load(Ordering::Acquire)),
            filled_to: AtomicU64::new(self.filled_to.load(Ordering::Acquire)),
        }
    }
}

/// The switch's meters, indexed as `Action::Meter(i)` refers to them.
#[derive(Debug, Default)]
pub struct Meters {
    meters: Vec<Meter>,
}

impl Meters {
    /// Meters from `(rate_kbps, burst_kb)` pairs, in order.
    pub fn new(specs: impl IntoIterator<Item = (u64, u64)>) -> Result<Self, MeterError> {
        let meters = specs
            .into_iter()
            .map(|(rate, burst)| Meter::new(rate, burst))
            .collect::<Result<_, _>>()?;
        Ok(Meters { meters })
    }

    /// Separate meters in the state these are in now (for a trace
    /// against a running switch that must not take their credit).
    pub fn snapshot(&self) -> Meters {
        Meters {
            meters: self.meters.iter().map(Meter::snapshot).collect(),
        }
    }

    #[inline]
    pub fn get(&self, index: u32) -> Option<&Meter> {
        self.meters.get(index as usize)
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;

    /// Sends `size`-byte packets every `gap` ns over `0..=until`; returns
    /// the bytes admitted.
    fn offer(m: &Meter, size: usize, gap: u64, until: u64) -> u64 {
        let mut admitted = 0;
        let mut t = 0;
        while t <= until {
            if m.admit(size, t) {
                admitted += size as u64;
            }
            t += gap;
        }
        admitted
    }

    #[test]
    fn ten_megabit_with_64k_burst_over_one_second() {
        // 10,000 kbps = 1,250,000 B/s; 64 kB = 64,000 B.
        let expect = 64_000 + 1_250_000;
        for (size, gap) in [
            (1000usize, 100_000u64),
            (64, 10_000),
            (1500, 1_000_000),
            (777, 123_457),
        ] {
            let m = Meter::new(10_000, 64).unwrap();
            let got = offer(&m, size, gap, SEC);
            assert!(
                got <= expect && got + size as u64 + gap_credit(gap) > expect,
                "size {size} gap {gap}: admitted {got}, expected {expect}"
            );
        }
        // The exact count for 1000-byte packets every 100 µs: 1314.
        let m = Meter::new(10_000, 64).unwrap();
        assert_eq!(offer(&m, 1000, 100_000, SEC) / 1000, 1314);
    }

    /// Credit earned in one gap at 10 Mbit/s, in bytes: the most the last
    /// arrival before the end of the second can leave unused.
    fn gap_credit(gap: u64) -> u64 {
        gap * 10_000 / 8_000
    }

    #[test]
    fn starts_full_then_limits_to_the_rate() {
        let m = Meter::new(8, 1).unwrap(); // 1,000 B/s, 1,000 B bucket
        assert_eq!(m.available_bytes(0), 1_000);
        assert!(m.admit(600, 0));
        assert!(!m.admit(600, 0));
        assert!(m.admit(400, 0));
        assert!(!m.admit(1, 0));
        // 1 byte per ms.
        assert!(!m.admit(10, 9 * MS));
        assert!(m.admit(10, 10 * MS));
        assert_eq!(m.available_bytes(10 * MS), 0);
        // The bucket never holds more than the burst.
        assert_eq!(m.available_bytes(100 * SEC), 1_000);
        assert!(!m.admit(1_001, 200 * SEC));
        assert!(m.admit(1_000, 200 * SEC));
    }

    #[test]
    fn credit_is_exact_to_the_nanosecond() {
        // 1 kbps: 125 bytes take exactly one second.
        let m = Meter::new(1, 1).unwrap();
        for _ in 0..8 {
            assert!(m.admit(125, 0));
        }
        assert!(!m.admit(125, 0));
        assert!(!m.admit(125, SEC - 1));
        assert!(m.admit(125, SEC));
        // 3 kbps, 1 byte = 8e6 micro-bits = 2,666,666.67 ns: admitted at
        // the first nanosecond with enough credit, with no drift over many
        // packets (credit carries across packets exactly).
        let m = Meter::new(3, 1).unwrap();
        assert!(m.admit(1000, 0));
        let mut t = 0;
        let mut n = 0u64;
        while n < 300 {
            if m.admit(1, t) {
                n += 1;
                // n bytes need n × 8e6 / 3 ns.
                assert_eq!(t, (n * UNITS_PER_BYTE).div_ceil(3).div_ceil(1000) * 1000);
            }
            t += 1000;
        }
    }

    #[test]
    fn short_intervals_are_not_lost() {
        // Packets 100 ns apart: the credit of every nanosecond arrives.
        let m = Meter::new(8_000, 1).unwrap(); // 1 byte per µs
        assert!(m.admit(1_000, 0));
        let mut admitted = 0;
        for i in 1..=100_000u64 {
            if m.admit(1, i * 100) {
                admitted += 1;
            }
        }
        // 10 ms of credit at 1 B/µs.
        assert_eq!(admitted, 10_000);
    }

    #[test]
    fn time_going_back_earns_nothing() {
        let m = Meter::new(8, 1).unwrap();
        assert!(m.admit(1_000, 10 * SEC));
        assert!(!m.admit(1, 5 * SEC));
        assert!(!m.admit(1, 10 * SEC));
        assert!(m.admit(1, 10 * SEC + MS));
    }

    #[test]
    fn huge_values_saturate() {
        let m = Meter::new(u64::MAX, u64::MAX).unwrap();
        assert!(m.admit(65_535, 0));
        assert!(m.admit(65_535, u64::MAX));
        assert_eq!(
            m.available_bytes(u64::MAX),
            MAX_CREDIT / UNITS_PER_BYTE - 65_535
        );
        let m = Meter::new(1, 1).unwrap();
        assert!(!m.admit(usize::MAX, 0));
        assert!(m.admit(1_000, 0));
        assert_eq!(
            Meter::new(0, 1).unwrap_err(),
            MeterError::ZeroRate { rate_kbps: 0 }
        );
        assert_eq!(
            Meter::new(1, 0).unwrap_err().to_string(),
            "meter burst 0 kB: must be at least 1"
        );
    }

    #[test]
    fn meters_by_index() {
        let ms = Meters::new([(10, 1), (20, 2)]).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms.get(1).map(Meter::rate_kbps), Some(20));
        assert!(ms.get(2).is_none());
        assert!(Meters::new([(1, 1), (0, 1)]).is_err());
    }

    /// Four workers share one meter; the simulated clock advances as they
    /// go. The total admitted stays within one packet per worker of the
    /// exact bucket: burst + rate × elapsed.
    #[test]
    fn shared_across_threads() {
        let m = Arc::new(Meter::new(80_000, 10).unwrap()); // 10 MB/s, 10 kB
        let clock = Arc::new(AtomicU64::new(0));
        let threads = 4u64;
        let size = 100u64;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let m = Arc::clone(&m);
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    let mut admitted = 0u64;
                    for _ in 0..50_000 {
                        // 1 µs per packet overall: 100 MB/s offered.
                        let now = clock.fetch_add(1_000, Ordering::Relaxed);
                        if m.admit(size as usize, now) {
                            admitted += size;
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let elapsed = clock.load(Ordering::Relaxed);
        let exact = 10_000 + elapsed / 100; // 10 bytes per µs
        assert!(admitted <= exact, "admitted {admitted} > {exact}");
        assert!(
            admitted + threads * size * 2 >= exact,
            "admitted {admitted} << {exact}"
        );
    }

    #[test]
    fn a_snapshot_has_the_credit_but_not_the_bucket() {
        let m = Meters::new([(8, 1)]).unwrap();
        let live = m.get(0).unwrap();
        assert!(live.admit(600, 0));
        let s = m.snapshot();
        let copy = s.get(0).unwrap();
        assert_eq!(copy.available_bytes(0), 400);
        assert!(copy.admit(400, 0));
        assert_eq!(copy.available_bytes(0), 0);
        assert_eq!(live.available_bytes(0), 400);
    }
}
