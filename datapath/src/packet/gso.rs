//! Software offloads: completing a checksum the sender left to the
//! receiver, and cutting a TCP segmentation-offload (TSO) super-frame into
//! MSS-sized segments. What a frame from an offload TAP needs before it
//! can go to a port without offloads (a plain TAP), or after an action
//! made its offload metadata unusable.
//!
//! # What?
//!
//! - [`complete_csum`]: a frame with `F_NEEDS_CSUM` holds, at
//!   `csum_start + csum_offset`, the folded pseudo-header sum; the sum of
//!   every byte from `csum_start` to the end, complemented, is the
//!   checksum.
//! - [`segment`]: a TSO4 / TSO6 super-frame is one TCP segment with up to
//!   64 KiB of payload. Each output segment has the same Ethernet, IP and
//!   TCP headers (options included) and at most `gso_size` payload bytes,
//!   with:
//!   - IPv4: total length, identification incremented per segment, header
//!     checksum; IPv6: payload length;
//!   - TCP: the sequence number advanced by the payload before it, FIN and
//!     PSH only on the last segment, CWR only on the first, the checksum
//!     computed in full.
//!
//! - [`refresh_pseudo`]: rewrites the partial checksum of a
//!   `F_NEEDS_CSUM` frame from the IP header as it is now. A flow's
//!   `set_field` on an address or port updates the L4 checksum field
//!   incrementally, as if it held a complete checksum; on a partial one
//!   that gives a wrong value, so the ports write it afresh before a frame
//!   leaves (with its header, or completed in software).
//!
//! The headers are found by parsing the frame (Ethernet, any number of
//! 802.1Q / 802.1ad tags, IPv4 with options or IPv6 without extension
//! headers, TCP), not by trusting `hdr_len`. Every offset is checked:
//! malformed input is an error, never a panic.

use thiserror::Error;

use super::csum::{self, Sum};
use super::vnet::{Gso, VnetHdr};
use super::{proto, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_QINQ, ETH_TYPE_VLAN};

/// TCP flag bits in byte 13 of the header.
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// A frame the software offloads cannot handle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GsoError {
    /// `csum_start + csum_offset` (+2 bytes) is not inside the frame.
    #[error("checksum at {start}+{offset} is outside a {len}-byte frame")]
    CsumRange {
        start: usize,
        offset: usize,
        len: usize,
    },
    /// A segmentation type done here only for TCP.
    #[error("software segmentation of {gso:?} is not supported")]
    Unsupported { gso: Gso },
    /// `gso_size` 0.
    #[error("gso_size is 0")]
    NoMss,
    /// The headers do not fit the segmentation asked for.
    #[error("cannot segment: {what} at offset {off} of a {len}-byte frame")]
    Headers {
        what: &'static str,
        off: usize,
        len: usize,
    },
}

/// Completes the checksum of a frame with `F_NEEDS_CSUM` in place.
pub fn complete_csum(frame: &mut [u8], h: &VnetHdr) -> Result<(), GsoError> {
    let start = usize::from(h.csum_start);
    let at = start + usize::from(h.csum_offset);
    let len = frame.len();
    let range = || GsoError::CsumRange {
        start,
        offset: usize::from(h.csum_offset),
        len,
    };
    if at + 2 > len {
        return Err(range());
    }
    let mut c = Sum::new()
        .bytes(frame.get(start..).ok_or_else(range)?)
        .finish();
    // UDP sends a computed 0 as 0xffff (0 means "no checksum").
    if c == 0 && h.csum_offset == 6 {
        c = 0xffff;
    }
    frame
        .get_mut(at..at + 2)
        .ok_or_else(range)?
        .copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Rewrites the pseudo-header sum in the checksum field of a
/// `F_NEEDS_CSUM` TCP or UDP frame over IPv4 or IPv6 (no IPv6 extension
/// headers), from its addresses and its L4 length (`len - csum_start`,
/// as the kernel counts it, super-frames included). Frames whose IP header
/// does not end at `csum_start`, or of another protocol, are left alone
/// (`Ok(false)`).
pub fn refresh_pseudo(frame: &mut [u8], h: &VnetHdr) -> Result<bool, GsoError> {
    let len = frame.len();
    let start = usize::from(h.csum_start);
    let at = start + usize::from(h.csum_offset);
    if !h.needs_csum() || at + 2 > len {
        return Ok(false);
    }
    let mut off = 12;
    let mut ty = be16(frame, off).unwrap_or(0);
    while ty == ETH_TYPE_VLAN || ty == ETH_TYPE_QINQ {
        off += 4;
        ty = be16(frame, off).unwrap_or(0);
    }
    let l3 = off + 2;
    let l4_len = len - start;
    let word = |f: &[u8], i: usize| -> Option<[u8; 4]> { f.get(i..i + 4)?.try_into().ok() };
    let pseudo = match ty {
        ETH_TYPE_IPV4 => {
            let Some(&vihl) = frame.get(l3) else {
                return Ok(false);
            };
            let proto = frame.get(l3 + 9).copied().unwrap_or(0);
            if vihl >> 4 != 4 || l3 + usize::from(vihl & 0x0f) * 4 != start {
                return Ok(false);
            }
            let (Some(src), Some(dst), Ok(l4_len)) = (
                word(frame, l3 + 12),
                word(frame, l3 + 16),
                u16::try_from(l4_len),
            ) else {
                return Ok(false);
            };
            if proto != proto::TCP && proto != proto::UDP {
                return Ok(false);
            }
            csum::pseudo_ipv4(
                u32::from_be_bytes(src),
                u32::from_be_bytes(dst),
                proto,
                l4_len,
            )
        }
        ETH_TYPE_IPV6 => {
            let proto = frame.get(l3 + 6).copied().unwrap_or(0);
            if l3 + 40 != start || (proto != proto::TCP && proto != proto::UDP) {
                return Ok(false);
            }
            let addr = |i: usize| -> Option<u128> {
                Some(u128::from_be_bytes(frame.get(i..i + 16)?.try_into().ok()?))
            };
            let (Some(src), Some(dst)) = (addr(l3 + 8), addr(l3 + 24)) else {
                return Ok(false);
            };
            csum::pseudo_ipv6(src, dst, proto, l4_len as u32)
        }
        _ => return Ok(false),
    };
    match frame.get_mut(at..at + 2) {
        Some(f) => {
            f.copy_from_slice(&pseudo.fold().to_be_bytes());
            Ok(true)
        }
        None => Err(GsoError::CsumRange {
            start,
            offset: usize::from(h.csum_offset),
            len,
        }),
    }
}

/// Where the headers of a TCP super-frame are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    v6: bool,
    l4: usize,
    /// End of the TCP header: where the payload starts.
    payload: usize,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn layout(frame: &[u8], gso: Gso) -> Result<Layout, GsoError> {
    let len = frame.len();
    let bad = |what, off| GsoError::Headers { what, off, len };
    let mut off = 12;
    let mut ty = be16(frame, off).ok_or(bad("no ethernet header", 0))?;
    while ty == ETH_TYPE_VLAN || ty == ETH_TYPE_QINQ {
        off += 4;
        ty = be16(frame, off).ok_or(bad("truncated vlan tag", off))?;
    }
    let l3 = off + 2;
    let (v6, l4) = match (gso, ty) {
        (Gso::Tcp4, ETH_TYPE_IPV4) => {
            let vihl = *frame.get(l3).ok_or(bad("no ipv4 header", l3))?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || l3 + ihl > len {
                return Err(bad("bad ipv4 header", l3));
            }
            if frame.get(l3 + 9) != Some(&proto::TCP) {
                return Err(bad("ipv4 protocol is not tcp", l3 + 9));
            }
            (false, l3 + ihl)
        }
        (Gso::Tcp6, ETH_TYPE_IPV6) => {
            if l3 + 40 > len || frame.get(l3).is_none_or(|b| b >> 4 != 6) {
                return Err(bad("bad ipv6 header", l3));
            }
            if frame.get(l3 + 6) != Some(&proto::TCP) {
                return Err(bad("ipv6 next header is not tcp", l3 + 6));
            }
            (true, l3 + 40)
        }
        (Gso::Tcp4 | Gso::Tcp6, _) => return Err(bad("ethertype does not match gso_type", off)),
        (g, _) => return Err(GsoError::Unsupported { gso: g }),
    };
    let doff = frame.get(l4 + 12).ok_or(bad("no tcp header", l4))?;
    let thl = usize::from(doff >> 4) * 4;
    if thl < 20 || l4 + thl > len {
        return Err(bad("bad tcp data offset", l4 + 12));
    }
    Ok(Layout {
        l3,
        v6,
        l4,
        payload: l4 + thl,
    })
}

/// Fixes up the headers of segment number `i` (of `count`), whose payload
/// starts `seq_off` bytes into the super-frame's, in `seg`.
fn fix_segment(
    seg: &mut [u8],
    l: &Layout,
    i: usize,
    count: usize,
    seq_off: usize,
    id0: u16,
    seq0: u32,
) -> Option<()> {
    let tcp_len = seg.len().checked_sub(l.l4)?;
    let ip = seg.get_mut(l.l3..l.l4)?;
    let pseudo = if l.v6 {
        ip.get_mut(4..6)?
            .copy_from_slice(&u16::try_from(tcp_len).ok()?.to_be_bytes());
        let src = u128::from_be_bytes(ip.get(8..24)?.try_into().ok()?);
        let dst = u128::from_be_bytes(ip.get(24..40)?.try_into().ok()?);
        csum::pseudo_ipv6(src, dst, proto::TCP, tcp_len as u32)
    } else {
        let total = u16::try_from(ip.len() + tcp_len).ok()?;
        ip.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
        let id = id0.wrapping_add(i as u16);
        ip.get_mut(4..6)?.copy_from_slice(&id.to_be_bytes());
        ip.get_mut(10..12)?.fill(0);
        let c = csum::checksum(ip);
        ip.get_mut(10..12)?.copy_from_slice(&c.to_be_bytes());
        let src = u32::from_be_bytes(ip.get(12..16)?.try_into().ok()?);
        let dst = u32::from_be_bytes(ip.get(16..20)?.try_into().ok()?);
        csum::pseudo_ipv4(src, dst, proto::TCP, tcp_len as u16)
    };
    let tcp = seg.get_mut(l.l4..)?;
    let seq = seq0.wrapping_add(seq_off as u32);
    tcp.get_mut(4..8)?.copy_from_slice(&seq.to_be_bytes());
    let flags = tcp.get_mut(13)?;
    if i > 0 {
        *flags &= !TCP_CWR;
    }
    if i + 1 < count {
        *flags &= !(TCP_FIN | TCP_PSH);
    }
    tcp.get_mut(16..18)?.fill(0);
    let c = pseudo.bytes(tcp).finish();
    tcp.get_mut(16..18)?.copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// Cuts the TSO super-frame `frame` (offload metadata `h`) into segments
/// of at most `h.gso_size` payload bytes, each built in `scratch` and
/// handed to `emit` in order, with every checksum complete. Returns the
/// number of segments. A frame whose payload fits one segment gives one.
pub fn segment(
    frame: &[u8],
    h: &VnetHdr,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, GsoError> {
    let mss = usize::from(h.gso_size);
    if mss == 0 {
        return Err(GsoError::NoMss);
    }
    let l = layout(frame, h.gso)?;
    let len = frame.len();
    let bad = |what, off| GsoError::Headers { what, off, len };
    let headers = frame.get(..l.payload).ok_or(bad("headers", 0))?;
    let payload = frame.get(l.payload..).unwrap_or_default();
    let id0 = if l.v6 {
        0
    } else {
        be16(frame, l.l3 + 4).ok_or(bad("ipv4 id", l.l3 + 4))?
    };
    let seq0 = frame
        .get(l.l4 + 4..l.l4 + 8)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(bad("tcp sequence number", l.l4 + 4))?;
    let count = payload.len().div_ceil(mss).max(1);
    let mut chunks = payload.chunks(mss);
    for i in 0..count {
        let chunk = chunks.next().unwrap_or_default();
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        fix_segment(scratch, &l, i, count, i * mss, id0, seq0)
            .ok_or(bad("segment too long for its ip length field", l.l3))?;
        emit(scratch);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::packet::build::{Builder, Ipv4, Ipv6, Tcp};
    use crate::packet::vnet::F_NEEDS_CSUM;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const SYN_ACK_PSH_FIN_CWR: u16 = 0x02 | 0x10 | 0x08 | 0x01 | 0x80;

    /// A TSO super-frame as a TAP hands it over: a valid frame whose TCP
    /// checksum field is replaced by the folded pseudo-header sum.
    fn super_frame(
        v6: bool,
        vlan: bool,
        flags: u16,
        seq: u32,
        payload: &[u8],
        mss: u16,
    ) -> (Vec<u8>, VnetHdr) {
        let mut b = Builder::new(A, B);
        if vlan {
            b = b.vlan(7, 0);
        }
        let tcp = Tcp::new(40000, 5201)
            .flags(flags)
            .seq(seq)
            .options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        b = if v6 {
            b.ipv6(Ipv6::new(
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            ))
        } else {
            b.ipv4(Ipv4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)).ident(0xfffe))
        };
        let mut f = b.tcp(tcp).payload(payload).build();
        let l = layout(&f, if v6 { Gso::Tcp6 } else { Gso::Tcp4 }).unwrap();
        let tcp_len = f.len() - l.l4;
        let pseudo = if v6 {
            let s = u128::from_be_bytes(f[l.l3 + 8..l.l3 + 24].try_into().unwrap());
            let d = u128::from_be_bytes(f[l.l3 + 24..l.l3 + 40].try_into().unwrap());
            csum::pseudo_ipv6(s, d, proto::TCP, tcp_len as u32)
        } else {
            let s = u32::from_be_bytes(f[l.l3 + 12..l.l3 + 16].try_into().unwrap());
            let d = u32::from_be_bytes(f[l.l3 + 16..l.l3 + 20].try_into().unwrap());
            csum::pseudo_ipv4(s, d, proto::TCP, tcp_len as u16)
        };
        f[l.l4 + 16..l.l4 + 18].copy_from_slice(&pseudo.fold().to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso: if v6 { Gso::Tcp6 } else { Gso::Tcp4 },
            ecn: false,
            hdr_len: l.payload as u16,
            gso_size: mss,
            csum_start: l.l4 as u16,
            csum_offset: 16,
        };
        (f, h)
    }

    fn segments(f: &[u8], h: &VnetHdr) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let n = segment(f, h, &mut scratch, |s| out.push(s.to_vec())).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn completes_a_partial_checksum() {
        let payload: Vec<u8> = (0..999u32).map(|i| i as u8).collect();
        let (mut f, h) = super_frame(false, false, 0x18, 1, &payload, 1448);
        assert!(csum::verify(&f).is_err());
        complete_csum(&mut f, &h).unwrap();
        csum::verify(&f).unwrap();
        let bad = VnetHdr {
            csum_start: f.len() as u16 - 1,
            ..h
        };
        assert_eq!(
            complete_csum(&mut f, &bad),
            Err(GsoError::CsumRange {
                start: f.len() - 1,
                offset: 16,
                len: f.len()
            })
        );
    }

    #[test]
    fn refresh_repairs_a_partial_checksum_after_set_field() {
        for v6 in [false, true] {
            let (mut f, h) = super_frame(v6, true, 0x18, 9, &[5; 700], 1448);
            let orig = f.clone();
            // Unchanged headers: the same partial sum.
            assert!(refresh_pseudo(&mut f, &h).unwrap());
            assert_eq!(f, orig, "v6 {v6}");
            // A set_field of the source address and the source port,
            // checksum updated incrementally as for a complete checksum.
            let l4 = usize::from(h.csum_start);
            let at = l4 + 16;
            let src = if v6 { 18 + 8 } else { 18 + 12 };
            let old_port = u16::from_be_bytes([f[l4], f[l4 + 1]]);
            let old_src = u32::from_be_bytes(f[src..src + 4].try_into().unwrap());
            f[src..src + 4].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
            if !v6 {
                // The IPv4 header checksum, as set_field keeps it.
                let ipc = u16::from_be_bytes([f[28], f[29]]);
                let ipc = csum::update32(ipc, old_src, 0x0a0b_0c0d);
                f[28..30].copy_from_slice(&ipc.to_be_bytes());
            }
            f[l4..l4 + 2].copy_from_slice(&443u16.to_be_bytes());
            let c = u16::from_be_bytes([f[at], f[at + 1]]);
            let c = csum::update32(c, old_src, 0x0a0b_0c0d);
            let c = csum::update16(c, old_port, 443);
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
            let mut broken = f.clone();
            complete_csum(&mut broken, &h).unwrap();
            assert!(
                csum::verify(&broken).is_err(),
                "v6 {v6}: the update breaks a partial sum"
            );
            assert!(refresh_pseudo(&mut f, &h).unwrap());
            complete_csum(&mut f, &h).unwrap();
            csum::verify(&f).unwrap();
            // Without NEEDS_CSUM, or a start that is not the L4 header,
            // nothing is touched.
            let before = f.clone();
            assert!(!refresh_pseudo(&mut f, &VnetHdr { flags: 0, ..h }).unwrap());
            assert!(!refresh_pseudo(
                &mut f,
                &VnetHdr {
                    csum_start: h.csum_start + 2,
                    ..h
                }
            )
            .unwrap());
            assert_eq!(f, before);
        }
    }

    #[test]
    fn tso4_fixture() {
        // 3000 bytes at MSS 1448: 1448 + 1448 + 104.
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let (f, h) = super_frame(
            false,
            false,
            SYN_ACK_PSH_FIN_CWR,
            0xffff_fff0,
            &payload,
            1448,
        );
        let segs = segments(&f, &h);
        assert_eq!(segs.len(), 3);
        let hl = 14 + 20 + 32;
        for (i, s) in segs.iter().enumerate() {
            csum::verify(s).unwrap();
            let plen = [1448, 1448, 104][i];
            assert_eq!(s.len(), hl + plen);
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, 20 + 32 + plen);
            // ids 0xfffe, 0xffff, 0x0000
            assert_eq!(
                u16::from_be_bytes([s[18], s[19]]),
                0xfffeu16.wrapping_add(i as u16)
            );
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1448 * i as u32));
            let flags = s[14 + 20 + 13];
            assert_eq!(flags & TCP_CWR != 0, i == 0);
            assert_eq!(flags & (TCP_FIN | TCP_PSH) != 0, i == 2);
            assert_eq!(flags & 0x10, 0x10, "ACK kept");
            assert_eq!(&s[hl..], &payload[1448 * i..1448 * i + plen]);
        }
    }

    #[test]
    fn errors_not_panics() {
        let (f, h) = super_frame(false, false, 0x10, 0, &[1; 100], 10);
        let mut s = Vec::new();
        assert_eq!(
            segment(&f, &VnetHdr { gso_size: 0, ..h }, &mut s, |_| {}),
            Err(GsoError::NoMss)
        );
        assert!(matches!(
            segment(
                &f,
                &VnetHdr {
                    gso: Gso::Tcp6,
                    ..h
                },
                &mut s,
                |_| {}
            ),
            Err(GsoError::Headers { .. })
        ));
        assert!(matches!(
            segment(
                &f,
                &VnetHdr {
                    gso: Gso::UdpL4,
                    ..h
                },
                &mut s,
                |_| {}
            ),
            Err(GsoError::Unsupported { gso: Gso::UdpL4 })
        ));
        for cut in 0..60 {
            assert!(segment(&f[..cut], &h, &mut s, |_| {}).is_err(), "{cut}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn segments_reassemble_and_verify(
            v6 in any::<bool>(),
            vlan in any::<bool>(),
            flags in 0u16..0x100,
            seq in any::<u32>(),
            len in 0usize..20_000,
            mss in 64u16..9000,
            seed in any::<u8>(),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let flags = flags | 0x10;
            let (f, h) = super_frame(v6, vlan, flags, seq, &payload, mss);
            let segs = segments(&f, &h);
            prop_assert_eq!(segs.len(), len.div_ceil(usize::from(mss)).max(1));
            let mut joined = Vec::new();
            let hl = if v6 { 14 + 40 + 32 } else { 14 + 20 + 32 } + if vlan { 4 } else { 0 };
            let l4 = hl - 32;
            for (i, s) in segs.iter().enumerate() {
                prop_assert!(csum::verify(s).is_ok(), "segment {} checksum: {:?}", i, csum::verify(s));
                prop_assert!(s.len() - hl <= usize::from(mss));
                let seq_i = u32::from_be_bytes(s[l4 + 4..l4 + 8].try_into().unwrap());
                prop_assert_eq!(seq_i, seq.wrapping_add(joined.len() as u32));
                let fl = u16::from(s[l4 + 13]);
                let last = i + 1 == segs.len();
                let mut want = flags;
                if i > 0 { want &= !u16::from(TCP_CWR); }
                if !last { want &= !u16::from(TCP_FIN | TCP_PSH); }
                prop_assert_eq!(fl, want & 0xff);
                joined.extend_from_slice(&s[hl..]);
            }
            prop_assert_eq!(joined, payload);
        }
    }
}
