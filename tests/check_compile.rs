//! `flowswitch check` compiles every flow (the COMPILE hook): the summary
//! shows the programs and instructions compiled, and a flow or custom
//! program that does not compile or verify is an error, placed in the YAML,
//! with exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .arg("check")
        .arg(file)
        .output()
        .expect("run flowswitch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fs-check-compile-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SWITCH: &str = "switch:
  name: t
ports:
  - {id: 1, name: a}
  - {id: 2, name: b}
tables:
  - id: 0
    flows:
      - name: custom
        priority: 10
        match: {eth_type: ipv4, ebpf: {asm: filter.s}}
        actions: [{ebpf: {asm: action.s}}, {output: 2}]
      - {name: rest, priority: 0, actions: [flood]}
";

fn write(dir: &Path, filter: &str, action: &str) -> PathBuf {
    std::fs::write(dir.join("filter.s"), filter).unwrap();
    std::fs::write(dir.join("action.s"), action).unwrap();
    let f = dir.join("switch.yaml");
    std::fs::write(&f, SWITCH).unwrap();
    f
}

#[test]
fn custom_programs_are_compiled_and_counted() {
    let d = tempdir("ok");
    // Filter: tp_dst == 80. Action: set the mark, continue.
    let f = write(
        &d,
        "ldxh %r0, [%r1+70]\njeq %r0, 80, +2\nmov %r0, 0\nexit\nmov %r0, 1\nexit\n",
        "stw [%r1+108], 1\nmov %r0, 0\nexit\n",
    );
    let out = check(&f);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("  ebpf      1 filter program, 1 action program\n"),
        "{stdout}"
    );
    // Two flows and the two custom programs verified on their own.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("  compiled  4 programs, "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let n: usize = line["  compiled  4 programs, ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // At least the custom programs' own 6 + 3 slots, counted twice (alone
    // and inside the flow).
    assert!(n >= 18, "{line}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_program_the_verifier_rejects_exits_1_with_its_place() {
    let d = tempdir("reject");
    // Reads r2, which is not initialised at entry.
    let f = write(&d, "mov %r0, %r2\nexit\n", "mov %r0, 0\nexit\n");
    let out = check(&f);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    let place = format!("{}:11:", f.display());
    assert!(lines[0].starts_with(&place), "{stderr}");
    assert!(lines[0].contains("filter.s"), "{stderr}");
    assert!(lines[0].contains("verifier"), "{stderr}");
    assert_eq!(lines[1], format!("{}: 1 error", f.display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_assembler_error_exits_1_with_its_place() {
    let d = tempdir("asm");
    let f = write(
        &d,
        "mov %r0, 1\nexit\n",
        "mov %r0, 0\nfrobnicate %r1\nexit\n",
    );
    let out = check(&f);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let place = format!("{}:12:", f.display());
    assert!(stderr.starts_with(&place), "{stderr}");
    assert!(
        stderr.contains("action.s`: line 2: `frobnicate"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_oversized_custom_program_is_an_error() {
    let d = tempdir("big");
    let f = write(&d, "", "mov %r0, 0\nexit\n");
    // Sparse: 64 MiB and one byte of zeros that take no disk space.
    std::fs::File::options()
        .write(true)
        .open(d.join("filter.s"))
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let out = check(&f);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("switch.yaml:11:39: `")
            && stderr.contains("filter.s`: larger than 67108864 bytes"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
