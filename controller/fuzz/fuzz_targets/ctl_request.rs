//! Arbitrary lines as control-socket requests to a running (in-memory)
//! switch of flows/example.yaml: nothing panics, every answer is one JSON
//! line with `ok`, and the switch still answers `dump-flows` afterwards.
//! `reload` with a file name is skipped (it would read any file the input
//! names); `reload` of the switch's own file is not. Every 1,000 inputs the
//! switch is emptied and reloaded, so that flows added by earlier inputs do
//! not pile up and slow the run down.
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use controller::control::protocol::{parse_request, Request, Response};
use controller::control::server::handle;
use controller::switchd::{Options, Switchd};
use libfuzzer_sys::fuzz_target;

fn switch() -> &'static Arc<Switchd> {
    static SW: OnceLock<Arc<Switchd>> = OnceLock::new();
    SW.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fs-fuzz-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let file = dir.join("example.yaml");
        std::fs::copy(repo.join("flows/example.yaml"), &file).expect("copy example.yaml");
        let (sw, _ports) = Switchd::in_memory(&file, Options::default()).expect("switch");
        sw
    })
}

fn answer(sw: &Switchd, req: Request) -> Response {
    let r = handle(sw, req);
    let line = r.to_line();
    assert!(!line.contains('\n'), "{line}");
    let back: Response = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(back.ok, r.ok);
    r
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let sw = switch();
    match parse_request(line) {
        Err(r) => assert!(!r.ok),
        Ok(Request::Reload { file: Some(_) }) => {}
        Ok(req) => {
            answer(sw, req);
        }
    }
    assert!(answer(sw, Request::DumpFlows {}).ok);
    static INPUTS: AtomicUsize = AtomicUsize::new(0);
    if INPUTS.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
        answer(
            sw,
            Request::DelFlows {
                name: None,
                table: None,
            },
        );
        assert!(answer(sw, Request::Reload { file: None }).ok);
    }
});
