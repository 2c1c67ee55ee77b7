//! The flow context: what r1 points to when a flow program runs
//! (`docs/ebpf-abi.md`, `struct fs_ctx` in `datapath/include/flowswitch.h`).
//!
//! ```text
//! off  size field
//! 0    80   the FlowKey (flow/key.rs layout), writable
//! 80   8    data      pointer to the first byte of the frame
//! 88   8    data_end  one past the last byte
//! 96   2    l3_off    offset of the L3 header in the frame (read-only)
//! 98   2    l4_off    offset of the L4 header, 0 if none (read-only)
//! 100  4    pkt_len   frame length (read-only)
//! 104  4    table     current table id (read-only)
//! 108  4    mark      free for custom programs (read/write)
//! 112  16   scratch   free for custom programs (read/write)
//! size 128
//! ```
//!
//! The layout declares the key as ten 8-byte words; the verifier accepts any
//! access that lies within one number field, so programs read `eth_type` as
//! a 2-byte load at offset 4 and the compiler compares whole words.

use std::sync::LazyLock;

use crate::ebpf::vm::{CtxField, CtxLayout};
use crate::flow::key::{FlowKey, KEY_BYTES, KEY_WORDS};

/// Offset of the flow key (80 bytes).
pub const CTX_KEY: usize = 0;
/// Offset of `data`: address of the frame's first byte.
pub const CTX_DATA: usize = 80;
/// Offset of `data_end`: address one past the frame's last byte.
pub const CTX_DATA_END: usize = 88;
/// Offset of `l3_off` (u16).
pub const CTX_L3_OFF: usize = 96;
/// Offset of `l4_off` (u16, 0 when the frame has no L4 header).
pub const CTX_L4_OFF: usize = 98;
/// Offset of `pkt_len` (u32).
pub const CTX_PKT_LEN: usize = 100;
/// Offset of `table` (u32).
pub const CTX_TABLE: usize = 104;
/// Offset of `mark` (u32, read/write).
pub const CTX_MARK: usize = 108;
/// Offset of the scratch bytes (read/write).
pub const CTX_SCRATCH: usize = 112;
/// Bytes of scratch.
pub const CTX_SCRATCH_LEN: usize = 16;
/// Size of the flow context.
pub const CTX_SIZE: usize = 128;

/// The flow context as the verifier sees it.
pub static FLOW_CTX: LazyLock<CtxLayout> = LazyLock::new(|| {
    let mut fields: Vec<(usize, usize, CtxField)> = (0..KEY_WORDS)
        .map(|w| (CTX_KEY + w * 8, 8, CtxField::ScalarRw))
        .collect();
    fields.extend([
        (CTX_DATA, 8, CtxField::PacketStart),
        (CTX_DATA_END, 8, CtxField::PacketEnd),
        // One field for both offsets, so that a compiler may load them
        // together; each can still be read alone.
        (CTX_L3_OFF, 4, CtxField::Scalar),
        (CTX_PKT_LEN, 4, CtxField::Scalar),
        (CTX_TABLE, 4, CtxField::Scalar),
        (CTX_MARK, 4, CtxField::ScalarRw),
        (CTX_SCRATCH, 8, CtxField::ScalarRw),
        (CTX_SCRATCH + 8, 8, CtxField::ScalarRw),
    ]);
    CtxLayout {
        size: CTX_SIZE,
        fields,
    }
});

/// A flow context buffer, 8-byte aligned like the structure the C header
/// declares. The engines fill `data` and `data_end` at entry
/// ([`crate::ebpf::vm::fill_ctx_pointers`]).
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct FlowCtx {
    pub bytes: [u8; CTX_SIZE],
}

impl std::fmt::Debug for FlowCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCtx")
            .field("key", &self.key())
            .field("l3_off", &self.l3_off())
            .field("l4_off", &self.l4_off())
            .field("pkt_len", &self.pkt_len())
            .field("table", &self.table())
            .field("mark", &self.mark())
            .finish()
    }
}

impl FlowCtx {
    /// A context for `key` with the given header offsets, frame length and
    /// table; mark and scratch zero.
    pub fn new(key: &FlowKey, l3_off: u16, l4_off: u16, pkt_len: u32, table: u32) -> Self {
        let mut c = FlowCtx {
            bytes: [0; CTX_SIZE],
        };
        c.set_key(key);
        c.put(CTX_L3_OFF, &l3_off.to_le_bytes());
        c.put(CTX_L4_OFF, &l4_off.to_le_bytes());
        c.put(CTX_PKT_LEN, &pkt_len.to_le_bytes());
        c.put(CTX_TABLE, &table.to_le_bytes());
        c
    }

    fn put(&mut self, off: usize, v: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(off..off + v.len()) {
            dst.copy_from_slice(v);
        }
    }

    fn get<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(off..off + N) {
            out.copy_from_slice(src);
        }
        out
    }

    /// The key as the program left it.
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey::default();
        for (i, w) in k.words.iter_mut().enumerate() {
            *w = u64::from_le_bytes(self.get::<8>(CTX_KEY + i * 8));
        }
        k
    }

    pub fn set_key(&mut self, key: &FlowKey) {
        let b: [u8; KEY_BYTES] = key.to_bytes();
        self.put(CTX_KEY, &b);
    }

    pub fn l3_off(&self) -> u16 {
        u16::from_le_bytes(self.get::<2>(CTX_L3_OFF))
    }

    pub fn l4_off(&self) -> u16 {
        u16::from_le_bytes(self.get::<2>(CTX_L4_OFF))
    }

    pub fn set_offsets(&mut self, l3_off: u16, l4_off: u16) {
        self.put(CTX_L3_OFF, &l3_off.to_le_bytes());
        self.put(CTX_L4_OFF, &l4_off.to_le_bytes());
    }

    pub fn pkt_len(&self) -> u32 {
        u32::from_le_bytes(self.get::<4>(CTX_PKT_LEN))
    }

    pub fn set_pkt_len(&mut self, len: u32) {
        self.put(CTX_PKT_LEN, &len.to_le_bytes());
    }

    pub fn table(&self) -> u32 {
        u32::from_le_bytes(self.get::<4>(CTX_TABLE))
    }

    pub fn set_table(&mut self, table: u32) {
        self.put(CTX_TABLE, &table.to_le_bytes());
    }

    pub fn mark(&self) -> u32 {
        u32::from_le_bytes(self.get::<4>(CTX_MARK))
    }

    pub fn set_mark(&mut self, mark: u32) {
        self.put(CTX_MARK, &mark.to_le_bytes());
    }

    pub fn scratch(&self) -> [u8; CTX_SCRATCH_LEN] {
        self.get::<CTX_SCRATCH_LEN>(CTX_SCRATCH)
    }

    /// The `data` / `data_end` values the engines wrote (addresses).
    pub fn data_pointers(&self) -> (u64, u64) {
        (
            u64::from_le_bytes(self.get::<8>(CTX_DATA)),
            u64::from_le_bytes(self.get::<8>(CTX_DATA_END)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::*;

    #[test]
    fn layout_is_sorted_disjoint_and_covers_the_context() {
        let l = &*FLOW_CTX;
        let mut end = 0;
        for &(off, size, _) in &l.fields {
            assert_eq!(off, end, "gap or overlap at {off}");
            end = off + size;
        }
        assert_eq!(end, CTX_SIZE);
        assert_eq!(l.size, CTX_SIZE);
    }

    #[test]
    fn buffer_round_trips() {
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_eth_type(0x86dd);
        k.set_ipv6_dst(0x2001_0db8 << 96 | 7);
        k.set_tp_dst(443);
        let mut c = FlowCtx::new(&k, 18, 58, 1000, 2);
        c.set_mark(0xdead_beef);
        assert_eq!(c.key(), k);
        assert_eq!(
            (c.l3_off(), c.l4_off(), c.pkt_len(), c.table(), c.mark()),
            (18, 58, 1000, 2, 0xdead_beef)
        );
        assert_eq!(&c.bytes[OFF_TP_DST..OFF_TP_DST + 2], &443u16.to_le_bytes());
        assert_eq!(c.bytes[CTX_L3_OFF], 18);
        assert_eq!(std::mem::align_of::<FlowCtx>(), 8);
    }
}
