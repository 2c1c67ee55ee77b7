//! `flowswitch bpf test`: runs conformance files on one or both engines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use datapath::ebpf::conformance;
use datapath::ebpf::engine::{judge, Engine, Verdict};

use super::BpfError;

/// Runs every `.data` file under `paths` on each engine. Prints one line per
/// failing (file, engine), then `N passed, M failed`; exit 1 if any failed.
pub fn run(paths: &[PathBuf], engines: &[Engine], verbose: bool) -> Result<ExitCode, BpfError> {
    let files = conformance::list_files(paths).map_err(|e| BpfError::Suite(e.to_string()))?;
    if files.is_empty() {
        return Err(BpfError::Suite("no .data files found".into()));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let verdicts = judge_file(file, engines);
        let mut ok = true;
        for (engine, v) in &verdicts {
            match v {
                Verdict::Fail(reason) => {
                    ok = false;
                    println!("FAIL {} [{}]: {reason}", file.display(), engine.name());
                }
                Verdict::PassRejected(reason) if verbose => {
                    println!(
                        "pass {} [{}]: rejected as expected: {reason}",
                        file.display(),
                        engine.name()
                    )
                }
                _ if verbose => println!("pass {} [{}]", file.display(), engine.name()),
                _ => {}
            }
        }
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Judges one file on each engine. An unreadable file fails on all; one whose
/// program does not assemble passes only if it expects an error.
pub fn judge_file(file: &Path, engines: &[Engine]) -> Vec<(Engine, Verdict)> {
    let text = crate::files::read_text(file);
    let case = text
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|t| conformance::parse(t).map_err(|e| e.to_string()));
    let expects_error = text
        .as_ref()
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "-- error"));
    engines
        .iter()
        .map(|&e| {
            let v = match &case {
                Ok(c) => judge(c, e),
                Err(reason) if expects_error => Verdict::PassRejected(reason.clone()),
                Err(reason) => Verdict::Fail(reason.clone()),
            };
            (e, v)
        })
        .collect()
}
