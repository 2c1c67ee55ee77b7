//! What the privileged end-to-end tests share: the check that the machine
//! can run them, and the repository's root.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};

/// Whether this machine can run a test that makes namespaces and TAPs:
/// root, `/dev/net/tun`, `ip` and `ping`. Without them the test prints
/// that it skipped and returns; under `CI=true` it fails instead.
pub fn prerequisites(test: &str) -> bool {
    let have = controller::up::checks::have;
    let missing: Vec<&str> = [
        (datapath::sys::cred::effective_uid() != 0).then_some("root"),
        (!Path::new("/dev/net/tun").exists()).then_some("/dev/net/tun"),
        (!have("ip")).then_some("ip"),
        (!have("ping")).then_some("ping"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but missing {missing:?}");
    }
    eprintln!("{test}: skipped, missing {missing:?}");
    false
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
