//! The MAC learning table behind the `normal` action.
//!
//! # What?
//!
//! A map from (VLAN, MAC address) to the port the address was last seen on.
//! The VLAN is the frame's 802.1Q VID, 0 when untagged (so a priority-tagged
//! frame, VID 0, shares the untagged VLAN). Entries age out
//! [`MacConfig::aging_ms`] after the address was last seen (300 s by
//! default); a frame from a known address on another port moves it; a
//! multicast or broadcast source (or the all-zero address) is never learned.
//! Time is passed in by the caller (milliseconds on any monotonic scale), so
//! tests and `flowswitch trace` are deterministic.
//!
//! # Design
//!
//! Every worker learns the source and looks up the destination of each
//! packet, so both must be cheap and must not serialise the workers.
//!
//! - The table is a fixed array of buckets of [`WAYS`] slots (an open-hash
//!   "cuckoo-less" set-associative cache): a key hashes to one bucket and
//!   lives in one of its slots. The size is fixed at creation, so the table
//!   is bounded by construction and never reallocates.
//! - Slots are atomics. Readers never lock and never write shared state:
//!   a bucket carries a sequence number, bumped to odd before and to even
//!   after every change (a seqlock); a reader loads the slots it needs and
//!   retries if the number moved. After a few failed tries it takes the
//!   bucket's lock, so readers always finish.
//! - Writers (a new address, a move, an eviction, aging sweeps) take the
//!   bucket's [`parking_lot::Mutex`] (one byte per bucket), so writers on
//!   different buckets never contend.
//! - Refreshing a known entry (the common case of learning: same address,
//!   same port) is a lock-free store of the last-seen time, done only when
//!   the stored time is at least [`MacConfig::refresh_ms`] old, so a busy
//!   address does not bounce the cache line between workers on every packet.
//!   The price: an entry may expire up to `refresh_ms` before `aging_ms`
//!   after the very last frame (1 s in 300 by default; 0 makes it exact).
//!   A refresh racing with the replacement of the same slot may give the new
//!   entry the refresher's time, which is about "now" anyway.
//! - When the bucket of a new address is full, it replaces an expired entry
//!   if there is one, else the entry of that bucket seen least recently.
//!   With 8 ways this is close to evicting the globally oldest entry, at
//!   O(1) cost even under a flood of new addresses, and a flood hashing
//!   into one bucket (the hash is keyed per table) can only churn that
//!   bucket.
//!
//! # Cost
//!
//! A lookup or a refresh is one hash, one bucket (three cache lines) and no
//! atomic read-modify-write. `benches/dp.rs` on the development machine
//! (2 cores, shared with other builds): a lookup of a known address about
//! 8 ns, a miss 6 ns, a refresh 8 ns, learning a new address (bucket lock,
//! eviction once full) about 30 ns.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::flow::spec::PortId;

/// A MAC address as the 48-bit number whose big-endian bytes are the
/// address (the [`FlowKey`](crate::flow::key::FlowKey) convention).
pub type Mac = u64;

/// Slots per bucket.
pub const WAYS: usize = 8;
/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// Default aging time: 300 s.
pub const DEFAULT_AGING_MS: u64 = 300_000;
/// Default refresh granularity: 1 s.
pub const DEFAULT_REFRESH_MS: u64 = 1_000;

/// Lock-free read attempts before a reader takes the bucket lock.
const READ_TRIES: usize = 4;
/// Set in every stored key; an empty slot holds 0.
const VALID: u64 = 1 << 63;
const MAC_MASK: u64 = (1 << 48) - 1;
/// The group (I/G) bit of the first octet: multicast and broadcast.
const GROUP_BIT: u64 = 1 << 40;

/// Whether `mac` is a group (multicast or broadcast) address.
#[inline]
pub fn is_multicast(mac: Mac) -> bool {
    mac & GROUP_BIT != 0
}

/// Table parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacConfig {
    /// Entries (rounded up to a power of two, at least [`WAYS`]).
    pub capacity: usize,
    /// An entry not seen for this long is gone.
    pub aging_ms: u64,
    /// A known entry's last-seen time is rewritten only when it is at
    /// least this old (see the module docs).
    pub refresh_ms: u64,
}

impl Default for MacConfig {
    fn default() -> Self {
        MacConfig {
            capacity: DEFAULT_CAPACITY,
            aging_ms: DEFAULT_AGING_MS,
            refresh_ms: DEFAULT_REFRESH_MS,
        }
    }
}

/// What [`MacTable::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A group or all-zero source address: not learned.
    Ignored,
    /// Known on this port: its time was refreshed (or was recent enough).
    Refreshed,
    /// A new entry in a free or expired slot.
    New,
    /// A known address seen on another port.
    Moved { from: PortId },
    /// A new entry that replaced the least recently seen live entry of its
    /// bucket.
    Evicted { vlan: u16, mac: Mac },
}

/// One entry, as listed by [`MacTable::entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: Mac,
    pub port: PortId,
    /// Milliseconds since it was last seen (as stored; see `refresh_ms`).
    pub age_ms: u64,
}

/// The stored key of (vlan, mac).
#[inline]
fn slot_key(vlan: u16, mac: Mac) -> u64 {
    VALID | (u64::from(vlan & 0x0fff) << 48) | (mac & MAC_MASK)
}

#[inline]
fn split_key(k: u64) -> (u16, Mac) {
    (((k >> 48) & 0x0fff) as u16, k & MAC_MASK)
}

/// One bucket: [`WAYS`] slots as three arrays of atomics, its seqlock
/// number and its writer lock.
#[repr(align(64))]
struct Bucket {
    keys: [AtomicU64; WAYS],
    seen: [AtomicU64; WAYS],
    ports: [AtomicU32; WAYS],
    /// Even when stable, odd while a writer changes the bucket.
    seq: AtomicU32,
    lock: Mutex<()>,
}

/// What a reader found in a bucket for a key: slot, port, last seen.
type Found = Option<(usize, PortId, u64)>;

impl Bucket {
    fn new() -> Self {
        Bucket {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            seen: std::array::from_fn(|_| AtomicU64::new(0)),
            ports: std::array::from_fn(|_| AtomicU32::new(0)),
            seq: AtomicU32::new(0),
            lock: Mutex::new(()),
        }
    }

    /// Scans the slots for `k` (no consistency check).
    #[inline]
    fn scan(&self, k: u64) -> Found {
        for i in 0..WAYS {
            if self.keys[i].load(Ordering::Relaxed) == k {
                return Some((
                    i,
                    self.ports[i].load(Ordering::Relaxed),
                    self.seen[i].load(Ordering::Relaxed),
                ));
            }
        }
        None
    }

    /// A consistent read of the slot holding `k`, without locking unless
    /// writers keep interfering.
    #[inline]
    fn find(&self, k: u64) -> Found {
        for _ in 0..READ_TRIES {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let found = self.scan(k);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return found;
                }
            }
            std::hint::spin_loop();
        }
        let _g = self.lock.lock();
        self.scan(k)
    }

    /// Runs `f` as the bucket's writer: under its lock, with the sequence
    /// number odd.
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&Bucket) -> R) -> R {
        let _g = self.lock.lock();
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let r = f(self);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        r
    }

    #[inline]
    fn put(&self, i: usize, k: u64, port: PortId, now: u64) {
        self.ports[i].store(port, Ordering::Relaxed);
        self.seen[i].store(now, Ordering::Relaxed);
        self.keys[i].store(k, Ordering::Relaxed);
    }

    #[inline]
    fn clear(&self, i: usize) {
        self.keys[i].store(0, Ordering::Relaxed);
    }
}

/// The MAC learning table; see the [module docs](self). Shared by all
/// workers (`&MacTable` is all they need).
pub struct MacTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    hasher: ahash::RandomState,
    aging_ms: u64,
    refresh_ms: u64,
}

impl std::fmt::Debug for MacTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacTable")
            .field("capacity", &self.capacity())
            .field("aging_ms", &self.aging_ms)
            .field("refresh_ms", &self.refresh_ms)
            .finish()
    }
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(MacConfig::default())
    }
}

impl MacTable {
    /// An empty table; the hash is keyed at random.
    pub fn new(cfg: MacConfig) -> Self {
        Self::with_hasher(cfg, ahash::RandomState::new())
    }

    /// An empty table with a fixed hash key: the same sequence of calls
    /// then evicts the same entries on every run.
    pub fn with_seed(cfg: MacConfig, seed: u64) -> Self {
        Self::with_hasher(
            cfg,
            ahash::RandomState::with_seeds(seed, seed ^ 0x9e37_79b9_7f4a_7c15, 0x6d61_6374, 1),
        )
    }

    fn with_hasher(cfg: MacConfig, hasher: ahash::RandomState) -> Self {
        let n = cfg.capacity.div_ceil(WAYS).max(1).next_power_of_two();
        MacTable {
            buckets: (0..n).map(|_| Bucket::new()).collect(),
            mask: n - 1,
            hasher,
            aging_ms: cfg.aging_ms,
            refresh_ms: cfg.refresh_ms,
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The aging time.
    pub fn aging_ms(&self) -> u64 {
        self.aging_ms
    }

    #[inline]
    fn bucket(&self, k: u64) -> &Bucket {
        let h = self.hasher.hash_one(k) as usize;
        // In range: `mask` is the (power of two) bucket count minus one.
        &self.buckets[h & self.mask]
    }

    #[inline]
    fn live(&self, seen: u64, now: u64) -> bool {
        now.saturating_sub(seen) < self.aging_ms
    }

    /// The port `mac` was last seen on in `vlan`, unless it aged out.
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: Mac, now_ms: u64) -> Option<PortId> {
        let k = slot_key(vlan, mac);
        match self.bucket(k).find(k) {
            Some((_, port, seen)) if self.live(seen, now_ms) => Some(port),
            _ => None,
        }
    }

    /// Records that `mac` was seen on `port` in `vlan` at `now_ms`.
    #[inline]
    pub fn learn(&self, vlan: u16, mac: Mac, port: PortId, now_ms: u64) -> Learned {
        if is_multicast(mac) || mac & MAC_MASK == 0 {
            return Learned::Ignored;
        }
        let k = slot_key(vlan, mac);
        let b = self.bucket(k);
        if let Some((i, p, seen)) = b.find(k) {
            if p == port && self.live(seen, now_ms) {
                if now_ms > seen && now_ms - seen >= self.refresh_ms {
                    b.seen[i].store(now_ms, Ordering::Relaxed);
                }
                return Learned::Refreshed;
            }
        }
        self.learn_slow(b, k, port, now_ms)
    }

    /// A new, moved or expired entry: under the bucket lock.
    #[cold]
    fn learn_slow(&self, b: &Bucket, k: u64, port: PortId, now: u64) -> Learned {
        b.write(|b| {
            if let Some((i, p, seen)) = b.scan(k) {
                b.put(i, k, port, now);
                return if !self.live(seen, now) {
                    Learned::New
                } else if p == port {
                    Learned::Refreshed
                } else {
                    Learned::Moved { from: p }
                };
            }
            // A free slot, else an expired one, else the oldest.
            let mut victim = 0;
            let mut victim_seen = u64::MAX;
            for i in 0..WAYS {
                let key = b.keys[i].load(Ordering::Relaxed);
                let seen = b.seen[i].load(Ordering::Relaxed);
                if key == 0 || !self.live(seen, now) {
                    b.put(i, k, port, now);
                    return Learned::New;
                }
                if seen < victim_seen {
                    victim = i;
                    victim_seen = seen;
                }
            }
            let (vlan, mac) = split_key(b.keys[victim].load(Ordering::Relaxed));
            b.put(victim, k, port, now);
            Learned::Evicted { vlan, mac }
        })
    }

    /// Forgets one entry; returns whether it was there (aged or not).
    pub fn remove(&self, vlan: u16, mac: Mac) -> bool {
        let k = slot_key(vlan, mac);
        self.bucket(k).write(|b| match b.scan(k) {
            Some((i, _, _)) => {
                b.clear(i);
                true
            }
            None => false,
        })
    }

    /// Forgets every entry on `port` (the port went down or away); returns
    /// how many there were.
    pub fn forget_port(&self, port: PortId) -> usize {
        self.sweep(|_, p, _| p == port)
    }

    /// Removes aged-out entries; returns how many. Optional: expired slots
    /// are reused anyway, and lookups ignore them.
    pub fn expire(&self, now_ms: u64) -> usize {
        self.sweep(|_, _, seen| !self.live(seen, now_ms))
    }

    /// Empties the table.
    pub fn flush(&self) {
        self.sweep(|_, _, _| true);
    }

    /// Clears every slot for which `doomed(key, port, seen)` holds.
    fn sweep(&self, doomed: impl Fn(u64, PortId, u64) -> bool) -> usize {
        let mut n = 0;
        for bucket in self.buckets.iter() {
            bucket.write(|b| {
                for i in 0..WAYS {
                    let key = b.keys[i].load(Ordering::Relaxed);
                    if key != 0
                        && doomed(
                            key,
                            b.ports[i].load(Ordering::Relaxed),
                            b.seen[i].load(Ordering::Relaxed),
                        )
                    {
                        b.clear(i);
                        n += 1;
                    }
                }
            });
        }
        n
    }

    /// The live entries, sorted by VLAN and address.
    pub fn entries(&self, now_ms: u64) -> Vec<MacEntry> {
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            let _g = bucket.lock.lock();
            for i in 0..WAYS {
                let key = bucket.keys[i].load(Ordering::Relaxed);
                let seen = bucket.seen[i].load(Ordering::Relaxed);
                if key != 0 && self.live(seen, now_ms) {
                    let (vlan, mac) = split_key(key);
                    out.push(MacEntry {
                        vlan,
                        mac,
                        port: bucket.ports[i].load(Ordering::Relaxed),
                        age_ms: now_ms.saturating_sub(seen),
                    });
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// A separate table with the same settings and hash key holding the
    /// live entries as they are at `now_ms` (for a trace against a running
    /// switch that must not change its table).
    pub fn snapshot(&self, now_ms: u64) -> MacTable {
        let t = MacTable {
            buckets: (0..self.buckets.len()).map(|_| Bucket::new()).collect(),
            mask: self.mask,
            hasher: self.hasher.clone(),
            aging_ms: self.aging_ms,
            refresh_ms: self.refresh_ms,
        };
        for e in self.entries(now_ms) {
            t.learn(e.vlan, e.mac, e.port, now_ms.saturating_sub(e.age_ms));
        }
        t
    }

    /// Live entries.
    pub fn len(&self, now_ms: u64) -> usize {
        self.entries(now_ms).len()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self, now_ms: u64) -> bool {
        self.len(now_ms) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const A: Mac = 0x0200_0000_0001;
    const B: Mac = 0x0200_0000_0002;

    fn exact(capacity: usize) -> MacTable {
        MacTable::with_seed(
            MacConfig {
                capacity,
                aging_ms: 300_000,
                refresh_ms: 0,
            },
            7,
        )
    }

    #[test]
    fn learn_lookup_move() {
        let t = exact(1024);
        assert_eq!(t.lookup(0, A, 0), None);
        assert_eq!(t.learn(0, A, 1, 0), Learned::New);
        assert_eq!(t.lookup(0, A, 5), Some(1));
        assert_eq!(t.learn(0, A, 1, 10), Learned::Refreshed);
        assert_eq!(t.learn(0, A, 3, 20), Learned::Moved { from: 1 });
        assert_eq!(t.lookup(0, A, 20), Some(3));
        assert_eq!(t.lookup(0, B, 20), None);
        assert_eq!(t.len(20), 1);
        assert!(t.remove(0, A));
        assert!(!t.remove(0, A));
        assert!(t.is_empty(20));
    }

    #[test]
    fn vlans_are_separate() {
        let t = exact(1024);
        t.learn(10, A, 1, 0);
        t.learn(20, A, 2, 0);
        t.learn(0, A, 3, 0);
        assert_eq!(t.lookup(10, A, 1), Some(1));
        assert_eq!(t.lookup(20, A, 1), Some(2));
        assert_eq!(t.lookup(0, A, 1), Some(3));
        assert_eq!(t.lookup(30, A, 1), None);
        // Only the low 12 bits are the VID.
        assert_eq!(t.lookup(0x1000 | 10, A, 1), Some(1));
        let e = t.entries(1);
        assert_eq!(
            e.iter().map(|e| (e.vlan, e.port)).collect::<Vec<_>>(),
            vec![(0, 3), (10, 1), (20, 2)]
        );
    }

    #[test]
    fn group_and_zero_sources_are_not_learned() {
        let t = exact(64);
        for mac in [
            0xffff_ffff_ffff,
            0x0100_5e00_0001,
            0x3333_0000_0001,
            0x0180_c200_0000,
            0,
        ] {
            assert_eq!(t.learn(0, mac, 1, 0), Learned::Ignored, "{mac:012x}");
            assert_eq!(t.lookup(0, mac, 0), None);
        }
        assert!(t.is_empty(0));
        assert!(is_multicast(0x0100_0000_0000));
        assert!(!is_multicast(0x0200_0000_0000));
    }

    #[test]
    fn entries_age_out() {
        let t = exact(64);
        t.learn(0, A, 1, 1_000);
        assert_eq!(t.lookup(0, A, 300_999), Some(1));
        assert_eq!(t.lookup(0, A, 301_000), None);
        assert_eq!(t.len(301_000), 0);
        // Refreshing keeps it alive.
        t.learn(0, B, 2, 0);
        t.learn(0, B, 2, 200_000);
        assert_eq!(t.lookup(0, B, 499_999), Some(2));
        assert_eq!(t.lookup(0, B, 500_000), None);
        // An expired entry seen again is new, not moved.
        assert_eq!(t.learn(0, B, 4, 600_000), Learned::New);
        assert_eq!(t.expire(600_000), 1); // A
        assert_eq!(t.entries(600_000).len(), 1);
    }

    #[test]
    fn refresh_granularity() {
        let t = MacTable::with_seed(
            MacConfig {
                capacity: 64,
                aging_ms: 10_000,
                refresh_ms: 1_000,
            },
            1,
        );
        t.learn(0, A, 1, 0);
        t.learn(0, A, 1, 999); // too recent to rewrite
        assert_eq!(t.lookup(0, A, 9_999), Some(1));
        assert_eq!(t.lookup(0, A, 10_000), None);
        t.learn(0, A, 1, 10_500); // expired: relearned at 10_500
        t.learn(0, A, 1, 11_500); // 1 s old: rewritten
        assert_eq!(t.lookup(0, A, 21_499), Some(1));
        assert_eq!(t.lookup(0, A, 21_500), None);
    }

    #[test]
    fn clock_going_back_does_not_expire() {
        let t = exact(64);
        t.learn(0, A, 1, 5_000);
        assert_eq!(t.lookup(0, A, 4_000), Some(1));
        assert_eq!(t.learn(0, A, 1, 4_000), Learned::Refreshed);
        assert_eq!(t.entries(4_000)[0].age_ms, 0);
    }

    #[test]
    fn full_bucket_evicts_the_least_recently_seen() {
        // Capacity 8: a single bucket, so every address competes.
        let t = exact(8);
        assert_eq!(t.capacity(), 8);
        for i in 0..8 {
            assert_eq!(t.learn(0, A + i, 1, i * 10), Learned::New);
        }
        t.learn(0, A, 1, 100); // A is now the most recent
        assert_eq!(
            t.learn(0, B + 100, 2, 110),
            Learned::Evicted {
                vlan: 0,
                mac: A + 1
            }
        );
        assert_eq!(t.lookup(0, A + 1, 110), None);
        assert_eq!(t.lookup(0, A, 110), Some(1));
        assert_eq!(
            t.learn(0, B + 101, 2, 120),
            Learned::Evicted {
                vlan: 0,
                mac: A + 2
            }
        );
        assert_eq!(t.len(120), 8);
        // An expired slot is reused before any live one is evicted.
        let t = exact(8);
        for i in 0..7 {
            t.learn(0, A + i, 1, 300_000);
        }
        t.learn(0, A + 100, 1, 0);
        assert_eq!(t.learn(0, A + 101, 1, 300_000), Learned::New);
        assert_eq!(t.lookup(0, A + 100, 300_000), None);
        assert_eq!(t.len(300_000), 8);
    }

    #[test]
    fn size_stays_bounded() {
        let t = exact(1000);
        assert_eq!(t.capacity(), 1024);
        let mut evicted = 0;
        for i in 0..20_000u64 {
            if let Learned::Evicted { .. } = t.learn(0, 0x0200_0000_0000 + i, (i % 7) as u32, i) {
                evicted += 1;
            }
            // The address just learned is always found.
            assert_eq!(t.lookup(0, 0x0200_0000_0000 + i, i), Some((i % 7) as u32));
        }
        assert!(t.len(20_000) <= 1024);
        assert!(t.len(20_000) > 900, "{}", t.len(20_000));
        assert_eq!(evicted, 20_000 - t.len(20_000));
    }

    #[test]
    fn forget_port_and_flush() {
        let t = exact(256);
        for i in 0..30 {
            t.learn(0, A + i, (i % 3) as u32, 0);
        }
        assert_eq!(t.forget_port(1), 10);
        assert_eq!(t.len(0), 20);
        assert!(t.entries(0).iter().all(|e| e.port != 1));
        t.flush();
        assert!(t.is_empty(0));
    }

    /// Workers learn their own addresses (with moves) while looking up
    /// everyone's. The port of address `m` is always `m`'s low 16 bits
    /// plus 0x10000 * (0 or 1), so a torn read (a port from another
    /// entry) is caught. A small table forces constant evictions.
    ///
    /// The large table must keep all 8,000 addresses, so no bucket may get
    /// more than [`WAYS`] of them: with a random key and 8,192 buckets that
    /// happened in about one run in 150 (a CI run failed so). The key is
    /// fixed and there are 32,768 buckets, so the check is deterministic
    /// (and would hold for almost any key).
    #[test]
    fn concurrent_learn_and_lookup() {
        for capacity in [64, 1 << 18] {
            let t = Arc::new(MacTable::with_seed(
                MacConfig {
                    capacity,
                    aging_ms: u64::MAX,
                    refresh_ms: 0,
                },
                7,
            ));
            let threads = 4u64;
            let per = 2_000u64;
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let t = Arc::clone(&t);
                    std::thread::spawn(move || {
                        let mut hits = 0u64;
                        for round in 0..20u64 {
                            for i in 0..per {
                                let mac = 0x0200_0000_0000 | (w << 16) | i;
                                let port = (mac & 0xffff) as u32 | (((round & 1) as u32) << 16);
                                t.learn((w % 2) as u16, mac, port, round * per + i);
                                let other = 0x0200_0000_0000 | (((w + 1) % threads) << 16) | i;
                                if let Some(p) =
                                    t.lookup((((w + 1) % threads) % 2) as u16, other, 0)
                                {
                                    assert_eq!(p & 0xffff, (other & 0xffff) as u32, "torn read");
                                    assert!(p >> 16 <= 1);
                                    hits += 1;
                                }
                            }
                        }
                        hits
                    })
                })
                .collect();
            let hits: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            if capacity >= 1 << 18 {
                assert!(hits > 0);
                // Nothing was evicted: every address is there with its
                // last port (round 19 is odd).
                for w in 0..threads {
                    for i in 0..per {
                        let mac = 0x0200_0000_0000 | (w << 16) | i;
                        assert_eq!(
                            t.lookup((w % 2) as u16, mac, 0),
                            Some((mac & 0xffff) as u32 | 0x10000)
                        );
                    }
                }
            } else {
                assert!(t.len(0) <= 64);
            }
        }
    }

    /// One bucket, a writer evicting on every learn, a reader looking up
    /// the same addresses: the seqlock must keep every port read paired
    /// with its address. (With the seqlock check removed from `find`, this
    /// test failed in two runs of three on the development machine.)
    #[test]
    fn one_bucket_churn() {
        let t = Arc::new(MacTable::new(MacConfig {
            capacity: WAYS,
            aging_ms: u64::MAX,
            refresh_ms: 0,
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let i = n % 11;
                    t.learn(0, 0x0200_0000_0000 | i, i as u32 * 3, n);
                    n += 1;
                }
                n
            })
        };
        let mut hits = 0u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < deadline || hits < 1000 {
            for i in 0..11u64 {
                if let Some(p) = t.lookup(0, 0x0200_0000_0000 | i, 0) {
                    assert_eq!(p, i as u32 * 3, "torn read of address {i}");
                    hits += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() > 11);
    }

    /// Sweeps (forget a port, expire, flush) run while workers learn and
    /// look up: a lookup never returns a port its address was not given.
    #[test]
    fn sweeps_race_with_workers() {
        let t = Arc::new(MacTable::new(MacConfig {
            capacity: 512,
            aging_ms: 50,
            refresh_ms: 0,
        }));
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for n in 0..200_000u64 {
                        let i = (n * 7 + w) % 1000;
                        let mac = 0x0200_0000_0000 | i;
                        // Address i lives on port i % 5 or i % 5 + 10.
                        let port = (i % 5) as u32 + if n % 3 == 0 { 10 } else { 0 };
                        t.learn(0, mac, port, n / 100);
                        if let Some(p) = t.lookup(0, 0x0200_0000_0000 | ((i + 1) % 1000), n / 100) {
                            assert_eq!(p % 10, ((i + 1) % 1000 % 5) as u32, "torn read");
                        }
                    }
                })
            })
            .collect();
        let sweeper = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let mut removed = 0;
                for k in 0..300u64 {
                    removed += t.forget_port((k % 5) as u32);
                    removed += t.expire(k * 7);
                    if k % 50 == 0 {
                        t.flush();
                    }
                }
                removed
            })
        };
        for h in workers {
            h.join().unwrap();
        }
        sweeper.join().unwrap();
        assert!(t.len(2_000) <= 512);
        t.flush();
        assert!(t.is_empty(2_000));
    }

    /// The fast path's cost: lookups and refreshes of known addresses.
    /// Prints the figures (`cargo test --release -- --nocapture`); the
    /// bound asserted is loose so that debug builds and busy machines pass.
    #[test]
    fn fast_path_timing() {
        let t = MacTable::new(MacConfig::default());
        let n = 4096u64;
        for i in 0..n {
            t.learn(0, 0x0200_0000_0000 + i, (i % 8) as u32, 0);
        }
        let rounds = 200u64;
        let start = std::time::Instant::now();
        let mut found = 0u64;
        for r in 0..rounds {
            for i in 0..n {
                let mac = 0x0200_0000_0000 + ((i * 2_654_435_761) % n);
                found += u64::from(t.lookup(0, mac, r).is_some());
                t.learn(0, mac, (mac % 8) as u32, r);
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * n) as f64;
        assert_eq!(found, rounds * n);
        println!("mac_lookup: lookup + refresh of a known address: {ns:.1} ns");
        assert!(ns < 2_000.0);
    }

    #[test]
    fn a_snapshot_is_independent() {
        let t = MacTable::with_seed(MacConfig::default(), 7);
        t.learn(0, 0x0200_0000_0001, 1, 1_000);
        t.learn(5, 0x0200_0000_0002, 2, 2_000);
        let s = t.snapshot(3_000);
        assert_eq!(s.entries(3_000), t.entries(3_000));
        // Moving an address in the copy leaves the original alone.
        s.learn(0, 0x0200_0000_0001, 9, 3_000);
        assert_eq!(s.lookup(0, 0x0200_0000_0001, 3_000), Some(9));
        assert_eq!(t.lookup(0, 0x0200_0000_0001, 3_000), Some(1));
        // Ages carry over: the entry seen at 2 s ages out at 302 s.
        assert_eq!(s.lookup(5, 0x0200_0000_0002, 301_000), Some(2));
        assert_eq!(s.lookup(5, 0x0200_0000_0002, 302_500), None);
    }
}
