//! 802.1Q tags on a frame in a `Vec<u8>`: push a tag, pop the outer one,
//! read and rewrite the outer TCI. Used by the `push_vlan`, `pop_vlan` and
//! `set_field: {vlan_vid, vlan_pcp}` actions.
//!
//! Only TPID 0x8100 is a tag here, as in [`super::extract()`]. After a push or
//! pop the header offsets of a [`super::Parsed`] move by 4 bytes and the key's
//! `vlan_tci` changes (to the inner tag after a pop of a double-tagged frame):
//! run `extract` again when the rest of the pipeline needs them.

use thiserror::Error;

use super::ETH_TYPE_VLAN;

/// Offset of the EtherType / TPID after the two MAC addresses.
const TYPE_OFF: usize = 12;
/// Offset of the TCI of the outer tag.
const TCI_OFF: usize = 14;
/// Bytes of a frame with one tag and its inner EtherType.
const TAGGED_MIN: usize = 18;

/// A frame a tag operation cannot apply to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VlanError {
    /// Shorter than the Ethernet header (14 bytes).
    #[error("frame of {len} bytes has no Ethernet header (14 needed) to tag")]
    NoEthernet { len: usize },
    /// TPID 0x8100 with fewer than 4 bytes after it.
    #[error("802.1q tag truncated: frame of {len} bytes, 18 needed")]
    TruncatedTag { len: usize },
    /// The frame carries no 802.1Q tag.
    #[error("frame has no 802.1q tag (ethertype 0x{eth_type:04x})")]
    Untagged { eth_type: u16 },
}

/// The TPID / EtherType at offset 12.
fn outer_type(frame: &[u8]) -> Result<u16, VlanError> {
    match frame.get(TYPE_OFF..TYPE_OFF + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(VlanError::NoEthernet { len: frame.len() }),
    }
}

/// Inserts an 802.1Q tag with `tci` (pcp << 13 | dei << 12 | vid) after the
/// MAC addresses, outside any existing tag.
pub fn push(frame: &mut Vec<u8>, tci: u16) -> Result<(), VlanError> {
    if frame.len() < TCI_OFF {
        return Err(VlanError::NoEthernet { len: frame.len() });
    }
    let [t0, t1] = ETH_TYPE_VLAN.to_be_bytes();
    let [c0, c1] = tci.to_be_bytes();
    frame.splice(TYPE_OFF..TYPE_OFF, [t0, t1, c0, c1]);
    Ok(())
}

/// Removes the outer 802.1Q tag and returns its TCI; `Ok(None)` (frame
/// unchanged) when the frame is untagged.
pub fn pop(frame: &mut Vec<u8>) -> Result<Option<u16>, VlanError> {
    let Some(tci) = tci(frame)? else {
        return Ok(None);
    };
    frame.drain(TYPE_OFF..TCI_OFF + 2);
    Ok(Some(tci))
}

/// The outer tag's TCI, `None` when untagged.
pub fn tci(frame: &[u8]) -> Result<Option<u16>, VlanError> {
    if outer_type(frame)? != ETH_TYPE_VLAN {
        return Ok(None);
    }
    match frame.get(TCI_OFF..TCI_OFF + 2) {
        Some(&[a, b]) if frame.len() >= TAGGED_MIN => Ok(Some(u16::from_be_bytes([a, b]))),
        _ => Err(VlanError::TruncatedTag { len: frame.len() }),
    }
}

/// Rewrites the outer tag's TCI in place.
pub fn set_tci(frame: &mut [u8], tci: u16) -> Result<(), VlanError> {
    let eth_type = outer_type(frame)?;
    if eth_type != ETH_TYPE_VLAN {
        return Err(VlanError::Untagged { eth_type });
    }
    let len = frame.len();
    if len < TAGGED_MIN {
        return Err(VlanError::TruncatedTag { len });
    }
    match frame.get_mut(TCI_OFF..TCI_OFF + 2) {
        Some(field) => {
            field.copy_from_slice(&tci.to_be_bytes());
            Ok(())
        }
        None => Err(VlanError::TruncatedTag { len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::VLAN_PRESENT;
    use crate::packet::build::{self, Builder, Ipv4, Udp};
    use crate::packet::{csum, extract};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn udp(vlan: Option<(u16, u8)>) -> Vec<u8> {
        let mut b = Builder::new(A, B);
        if let Some((vid, pcp)) = vlan {
            b = b.vlan(vid, pcp);
        }
        b.ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
            .udp(Udp::new(7, 9))
            .payload(b"vlan")
            .build()
    }

    #[test]
    fn push_then_pop_round_trips() {
        let plain = udp(None);
        let mut f = plain.clone();
        push(&mut f, (3 << 13) | 42).unwrap();
        assert_eq!(f, udp(Some((42, 3))));
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x60, 0x2a, 0x08, 0x00]);
        let p = extract(&f, 0).unwrap();
        assert_eq!(p.key.vlan_tci(), (3 << 13) | VLAN_PRESENT | 42);
        assert_eq!(p.l3, 18);
        assert!(csum::verify_l3_l4(&f));
        assert_eq!(pop(&mut f), Ok(Some((3 << 13) | 42)));
        assert_eq!(f, plain);
    }

    #[test]
    fn push_onto_tagged_makes_the_new_tag_outer() {
        let mut f = udp(Some((10, 0)));
        push(&mut f, 20).unwrap();
        assert_eq!(tci(&f), Ok(Some(20)));
        let p = extract(&f, 0).unwrap();
        assert_eq!(p.key.vlan_vid(), Some(20));
        assert_eq!(p.key.eth_type(), 0x8100);
        assert_eq!(pop(&mut f), Ok(Some(20)));
        assert_eq!(f, udp(Some((10, 0))));
    }

    #[test]
    fn pop_untagged_is_a_no_op() {
        let mut f = udp(None);
        assert_eq!(pop(&mut f), Ok(None));
        assert_eq!(f, udp(None));
        // An 802.1ad tag is not ours to pop.
        let mut s = udp(Some((5, 0)));
        s[12] = 0x88;
        s[13] = 0xa8;
        let before = s.clone();
        assert_eq!(pop(&mut s), Ok(None));
        assert_eq!(s, before);
    }

    #[test]
    fn set_tci_rewrites_in_place() {
        let mut f = udp(Some((10, 0)));
        set_tci(&mut f, (7 << 13) | 4094).unwrap();
        assert_eq!(f, udp(Some((4094, 7))));
        let mut u = udp(None);
        assert_eq!(
            set_tci(&mut u, 1),
            Err(VlanError::Untagged { eth_type: 0x0800 })
        );
    }

    #[test]
    fn short_frames_are_errors() {
        let mut short = vec![0u8; 13];
        assert_eq!(push(&mut short, 1), Err(VlanError::NoEthernet { len: 13 }));
        assert_eq!(pop(&mut short), Err(VlanError::NoEthernet { len: 13 }));
        assert_eq!(short.len(), 13);
        let mut bare = vec![0u8; 14];
        push(&mut bare, 1).unwrap();
        assert_eq!(bare.len(), 18);
        for n in 14..18 {
            let mut f = udp(Some((1, 0)));
            f.truncate(n);
            assert_eq!(pop(&mut f), Err(VlanError::TruncatedTag { len: n }));
            assert_eq!(set_tci(&mut f, 2), Err(VlanError::TruncatedTag { len: n }));
            assert_eq!(f.len(), n);
        }
        let e = VlanError::TruncatedTag { len: 15 };
        assert_eq!(
            e.to_string(),
            "802.1q tag truncated: frame of 15 bytes, 18 needed"
        );
    }

    #[test]
    fn arp_push_pop() {
        let plain = build::arp_request(A, [1, 1, 1, 1].into(), [2, 2, 2, 2].into());
        let mut f = plain.clone();
        push(&mut f, 9).unwrap();
        assert_eq!(extract(&f, 0).unwrap().key.arp_op(), 1);
        pop(&mut f).unwrap();
        assert_eq!(f, plain);
    }
}
