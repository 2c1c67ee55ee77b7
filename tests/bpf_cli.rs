//! End-to-end tests of `flowswitch bpf ...` against the bpf_conformance suite.

use std::path::PathBuf;
use std::process::Command;

fn flowswitch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowswitch"))
}

/// The suite directory, or `None` (with a message) when it is absent outside CI.
fn suite() -> Option<PathBuf> {
    match datapath::ebpf::conformance::find_suite() {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "bpf_conformance suite not found (set BPF_CONFORMANCE_DIR); required under CI=true"
            )
        }
        None => {
            eprintln!("skipped: bpf_conformance suite not found (set BPF_CONFORMANCE_DIR)");
            None
        }
    }
}

fn run_suite(engine: &str) {
    let Some(dir) = suite() else { return };
    let out = flowswitch()
        .args(["bpf", "test", "--engine", engine])
        .arg(&dir)
        .output()
        .expect("run flowswitch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(last, "313 passed, 0 failed", "engine {engine}:\n{stdout}");
    assert!(out.status.success());
}

#[test]
fn whole_suite_passes_on_the_interpreter() {
    run_suite("interp");
}

#[test]
fn whole_suite_passes_on_the_jit() {
    run_suite("jit");
}

#[test]
fn a_failing_file_is_reported_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("fs-bpf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wrong.data");
    std::fs::write(&f, "-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n").unwrap();
    let out = flowswitch().args(["bpf", "test"]).arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("r0 = 0x1, expected 0x2"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("0 passed, 1 failed"));
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_files_pass_when_rejected() {
    let dir = std::env::temp_dir().join(format!("fs-bpf-cli-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.data");
    // Reads r3, which was never written: the verifier must reject it.
    std::fs::write(&f, "-- asm\nmov %r0, %r3\nexit\n-- error\n").unwrap();
    let out = flowswitch().args(["bpf", "test"]).arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 0 failed"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_prints_r0_and_verify_reports_rejections() {
    let dir = std::env::temp_dir().join(format!("fs-bpf-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("sum.s");
    std::fs::write(
        &prog,
        "ldxb %r0, [%r1]\nldxb %r3, [%r1+1]\nadd %r0, %r3\nexit\n",
    )
    .unwrap();
    let out = flowswitch()
        .args(["bpf", "run", "--engine", "both", "--mem", "0203"])
        .arg(&prog)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "interp: 0x5\njit: 0x5\n");

    let bad = dir.join("bad.s");
    std::fs::write(&bad, "mov %r0, 0\nstxdw [%r10-520], %r0\nexit\n").unwrap();
    let out = flowswitch()
        .args(["bpf", "verify"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rejected: insn 1"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));

    let bin = dir.join("sum.bin");
    let st = flowswitch()
        .args(["bpf", "asm"])
        .arg(&prog)
        .arg("-o")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::metadata(&bin).unwrap().len(), 4 * 8);
    let out = flowswitch()
        .args(["bpf", "disasm"])
        .arg(&bin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ldxb %r0, [%r1"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
