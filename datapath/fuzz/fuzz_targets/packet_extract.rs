//! Arbitrary bytes as a frame: extraction must never panic, what it
//! accepts must have consistent header offsets, and its fast path must
//! give what the general parser gives.
#![no_main]

use datapath::packet::{extract, extract_general};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte steers the EtherType so that most inputs reach L3.
    let Some((&steer, frame)) = data.split_first() else { return };
    let mut frame = frame.to_vec();
    if frame.len() >= 14 {
        let ty: u16 = match steer % 5 {
            0 => 0x0800,
            1 => 0x86dd,
            2 => 0x0806,
            3 => 0x8100,
            _ => u16::from_be_bytes([frame[12], frame[13]]),
        };
        frame[12..14].copy_from_slice(&ty.to_be_bytes());
        if steer % 5 == 3 && frame.len() >= 18 {
            let inner: u16 = if steer & 0x80 != 0 { 0x86dd } else { 0x0800 };
            frame[16..18].copy_from_slice(&inner.to_be_bytes());
        }
    }
    let got = extract(&frame, u32::from(steer));
    assert_eq!(got, extract_general(&frame, u32::from(steer)), "{frame:02x?}");
    match got {
        Ok(p) => {
            let (l3, l4, end) = (usize::from(p.l3), usize::from(p.l4), p.end as usize);
            assert!(l3 <= end && end <= frame.len(), "{p:?}");
            assert!(l4 == 0 || (l3 < l4 && l4 <= end), "{p:?}");
            assert_eq!(p.key.in_port(), u32::from(steer));
        }
        Err(e) => {
            assert!(e.offset() <= frame.len(), "{e}");
            let _ = e.kind().index();
        }
    }
});
