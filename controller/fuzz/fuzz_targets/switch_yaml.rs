//! Arbitrary text as a switch or topology file: loading never panics,
//! every error names the file, a line and a column, and a file that loads
//! is compiled (verified and JIT-compiled) without a panic.
//!
//! Run it from an empty directory: the file is "fuzz.yaml" there, so the
//! custom programs and flows files it names resolve against that directory.
#![no_main]

use std::path::Path;

use controller::model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match model::load::from_str(Path::new("fuzz.yaml"), text) {
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                let msg = e.to_string();
                let place: Vec<&str> = msg.splitn(4, ':').collect();
                let numbered = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                assert!(
                    place.len() == 4
                        && (place[0] == "fuzz.yaml" || place[0].ends_with(".yaml"))
                        && place.get(1).is_some_and(numbered)
                        && place.get(2).is_some_and(numbered),
                    "an error without file:line:col: {msg}"
                );
            }
        }
        Ok(loaded) => {
            let _ = controller::dataplane::compile_hook(loaded.switch());
        }
    }
});
