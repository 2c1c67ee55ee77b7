//! Reader for bpf_conformance `.data` test files.
//!
//! A file is a list of sections, each started by a line beginning with `--`:
//! `-- asm` (program text, see [`super::asm`]), `-- raw` (64-bit slots as
//! numbers; overrides `asm`), `-- mem` (hex bytes), `-- result` (expected r0),
//! `-- error` (the program must be rejected). `-- c` and
//! `-- no register offset` are ignored, and so is anything before the first
//! section. `#` starts a comment. Errors carry the line number in the file.

use super::asm::{self, AsmError};
use super::insn::Insn;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Environment variable naming the suite directory.
pub const SUITE_ENV: &str = "BPF_CONFORMANCE_DIR";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConformanceError {
    #[error("assembling `-- asm`: {0}")]
    Asm(#[from] AsmError),
    #[error("line {line}: unknown section `{name}`")]
    UnknownSection { line: usize, name: String },
    #[error("line {line}: section `{name}` appears twice")]
    DuplicateSection { line: usize, name: String },
    #[error("line {line}: `{text}`: {reason}")]
    BadLine {
        line: usize,
        text: String,
        reason: &'static str,
    },
    #[error("no program: the file has neither `-- asm` nor `-- raw`")]
    NoProgram,
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<ConformanceError>,
    },
    #[error(
        "the conformance suite is missing (set {SUITE_ENV} or put it at {default}) and CI=true"
    )]
    SuiteMissing { default: PathBuf },
}

/// One test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The program: the `-- raw` slots if present, else the assembled `-- asm`.
    pub insns: Vec<Insn>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    pub expect_error: bool,
    /// The text of the `-- asm` section (empty if there is none), with
    /// every line outside it blanked so that line numbers match the file.
    pub asm: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Preamble,
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    Ignored,
}

fn section_of(name: &str) -> Option<Section> {
    Some(match name {
        "asm" => Section::Asm,
        "raw" => Section::Raw,
        "mem" => Section::Mem,
        "result" => Section::Result,
        "error" => Section::Error,
        "c" | "no register offset" => Section::Ignored,
        _ => return None,
    })
}

/// Parses the text of one `.data` file.
pub fn parse(text: &str) -> Result<TestCase, ConformanceError> {
    let mut section = Section::Preamble;
    let mut seen: Vec<Section> = Vec::new();
    let mut asm_lines: Vec<&str> = Vec::new();
    let mut has_asm = false;
    let mut raw: Option<Vec<Insn>> = None;
    let mut mem = Vec::new();
    let mut result: Option<u64> = None;
    let mut expect_error = false;

    for (idx, full) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = full.trim();
        if let Some(name) = trimmed.strip_prefix("--") {
            let name = name.trim().to_ascii_lowercase();
            section = section_of(&name).ok_or_else(|| ConformanceError::UnknownSection {
                line,
                name: name.clone(),
            })?;
            if section != Section::Ignored {
                if seen.contains(&section) {
                    return Err(ConformanceError::DuplicateSection { line, name });
                }
                seen.push(section);
            }
            match section {
                Section::Asm => has_asm = true,
                Section::Raw => raw = Some(Vec::new()),
                Section::Error => expect_error = true,
                _ => {}
            }
            asm_lines.push("");
            continue;
        }
        asm_lines.push(if section == Section::Asm { full } else { "" });
        let code = match trimmed.find('#') {
            Some(i) => trimmed[..i].trim(),
            None => trimmed,
        };
        if code.is_empty() {
            continue;
        }
        let bad = |reason| ConformanceError::BadLine {
            line,
            text: code.to_string(),
            reason,
        };
        match section {
            Section::Raw => {
                let v = parse_u64(code).ok_or_else(|| bad("expected a 64-bit slot value"))?;
                if let Some(r) = raw.as_mut() {
                    r.push(Insn::from_u64(v));
                }
            }
            Section::Mem => {
                for tok in code.split_whitespace() {
                    if tok.len() != 2 {
                        return Err(bad("memory bytes must be two hex digits each"));
                    }
                    let b = u8::from_str_radix(tok, 16)
                        .map_err(|_| bad("memory bytes must be two hex digits each"))?;
                    mem.push(b);
                }
            }
            Section::Result => {
                if result.is_some() {
                    return Err(bad("`-- result` holds more than one value"));
                }
                result = Some(parse_result(code).ok_or_else(|| bad("expected a 64-bit result"))?);
            }
            // Program text is assembled below; the error text is informative.
            Section::Asm | Section::Error | Section::Ignored => {}
            Section::Preamble => return Err(bad("text before the first section")),
        }
    }

    let asm = if has_asm {
        asm_lines.join("\n")
    } else {
        String::new()
    };
    let insns = match raw {
        Some(r) => r,
        None if has_asm => asm::assemble(&asm)?,
        None => return Err(ConformanceError::NoProgram),
    };
    Ok(TestCase {
        insns,
        mem,
        result,
        expect_error,
        asm,
    })
}

/// Reads and parses one file; errors name the file.
pub fn load(path: &Path) -> Result<TestCase, ConformanceError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConformanceError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text).map_err(|e| ConformanceError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// `0x` hex or decimal, unsigned 64-bit.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(h, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// A result: hex if it contains `0x`, else decimal; a negative decimal is
/// taken as its two's-complement bit pattern.
fn parse_result(s: &str) -> Option<u64> {
    match s.strip_prefix('-') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
            let v: u64 = d.parse().ok()?;
            (v <= i64::MIN.unsigned_abs()).then(|| v.wrapping_neg())
        }
        Some(_) => None,
        None => parse_u64(s),
    }
}

/// The default suite location: `<workspace root>/../shared/bpf-conformance`.
pub fn default_suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bpf-conformance")
}

/// Where the suite is: `$BPF_CONFORMANCE_DIR` when set (returned as given,
/// so a wrong setting shows up as an error rather than a skip), else the
/// default location if it exists.
pub fn find_suite() -> Option<PathBuf> {
    match std::env::var_os(SUITE_ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let d = default_suite_dir();
            d.is_dir().then_some(d)
        }
    }
}

/// The suite for a test: `Ok(Some(dir))` if found; `Ok(None)` after printing
/// a skip notice if absent outside CI; an error if absent with `CI=true`.
pub fn suite_for_test(test: &str) -> Result<Option<PathBuf>, ConformanceError> {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    suite_decision(test, find_suite(), ci)
}

fn suite_decision(
    test: &str,
    found: Option<PathBuf>,
    ci: bool,
) -> Result<Option<PathBuf>, ConformanceError> {
    match found {
        Some(d) => Ok(Some(d)),
        None if ci => Err(ConformanceError::SuiteMissing {
            default: default_suite_dir(),
        }),
        None => {
            eprintln!(
                "{test}: skipped, bpf_conformance suite not found (set {SUITE_ENV} or put it at {})",
                default_suite_dir().display()
            );
            Ok(None)
        }
    }
}

/// Runs `check` on every case of the suite (found as [`suite_for_test`]
/// does for the test `test`) and panics with the list of the files that
/// failed and why. Returns the files, or `None` when the suite is absent
/// outside CI.
#[cfg(test)]
pub(crate) fn assert_suite_passes(
    test: &str,
    check: impl Fn(&TestCase) -> Result<(), String>,
) -> Option<Vec<PathBuf>> {
    let dir = suite_for_test(test).unwrap()?;
    let files = list_files(&[dir]).unwrap();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            load(f)
                .map_err(|e| e.to_string())
                .and_then(|tc| check(&tc))
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert_eq!(files.len(), 313);
    Some(files)
}

/// The test files named by `paths`: files as given, directories searched
/// recursively for `*.data`. Sorted, without duplicates.
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConformanceError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| ConformanceError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            collect_dir(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ConformanceError> {
    let io = |e: std::io::Error| ConformanceError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "data") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_suite_parses_and_assembles() {
        let Some(dir) = suite_for_test("whole_suite_parses_and_assembles").unwrap() else {
            return;
        };
        let files = list_files(&[dir]).unwrap();
        assert_eq!(files.len(), 313);
        let mut with_mem = 0;
        for f in &files {
            let tc = load(f).unwrap_or_else(|e| panic!("{e}"));
            assert!(!tc.insns.is_empty(), "{}", f.display());
            assert!(tc.result.is_some(), "{}", f.display());
            let from_asm =
                asm::assemble(&tc.asm).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(from_asm, tc.insns, "{}", f.display());
            with_mem += usize::from(!tc.mem.is_empty());
        }
        assert_eq!(with_mem, 40);
    }

    #[test]
    fn lddw_raw_equals_assembled_asm() {
        let Some(dir) = suite_for_test("lddw_raw_equals_assembled_asm").unwrap() else {
            return;
        };
        let tc = load(&dir.join("lddw.data")).unwrap();
        assert_eq!(tc.insns.len(), 3);
        assert_eq!(asm::assemble(&tc.asm).unwrap(), tc.insns);
        assert_eq!(tc.result, Some(0x1122334455667788));
    }

    #[test]
    fn parses_every_section() {
        let text = "# header comment\n\
                    -- asm\n\
                    mov %r0, 1 # one\n\
                    \n\
                    exit\n\
                    -- mem\n\
                    00 01 ff\n\
                    7f # more\n\
                    -- result\n\
                    -3\n\
                    -- c\n\
                    for (i = 0; i < n; i--) { x = y -- z; }\n\
                    -- no register offset\n\
                    call instruction\n";
        let tc = parse(text).unwrap();
        assert_eq!(
            tc.insns,
            vec![Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)]
        );
        assert_eq!(tc.mem, vec![0x00, 0x01, 0xff, 0x7f]);
        assert_eq!(tc.result, Some((-3i64) as u64));
        assert!(!tc.expect_error);
        assert_eq!(tc.asm.lines().nth(2), Some("mov %r0, 1 # one"));

        let tc = parse("-- asm\nexit\n-- result\n0xFFFFFFFFFFFFFFFF\n").unwrap();
        assert_eq!(tc.result, Some(u64::MAX));
        assert!(tc.mem.is_empty());
        let tc = parse("-- asm\nexit\n-- result\n18446744073709551615\n").unwrap();
        assert_eq!(tc.result, Some(u64::MAX));

        let tc = parse("-- asm\nfoo %r1\n-- raw\n0x95\n-- error\nbad insn\n").unwrap();
        assert_eq!(tc.insns, vec![Insn::new(0x95, 0, 0, 0, 0)]);
        assert!(tc.expect_error);
        assert_eq!(tc.result, None);
    }

    #[test]
    fn errors_carry_file_lines() {
        let e = parse("# c\n-- asm\nmov %r0, 1\nmov %r11, 2\nexit\n").unwrap_err();
        match e {
            ConformanceError::Asm(a) => assert_eq!(a.line(), 4, "{a}"),
            other => panic!("{other}"),
        }
        let cases: &[(&str, usize)] = &[
            ("-- asm\nexit\n-- mem\n00 1\n", 4),
            ("-- asm\nexit\n-- mem\n00 zz\n", 4),
            ("-- asm\nexit\n-- result\n0x1 2\n", 4),
            ("-- asm\nexit\n-- result\n1\n2\n", 5),
            ("-- asm\nexit\n-- result\n0x10000000000000000\n", 4),
            ("-- asm\nexit\n-- result\n-9223372036854775809\n", 4),
            ("-- raw\n0x95\nexit\n", 3),
            ("stray\n-- asm\nexit\n", 1),
        ];
        for (text, line) in cases {
            match parse(text) {
                Err(ConformanceError::BadLine { line: l, .. }) => assert_eq!(l, *line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            parse("-- asm\nexit\n-- bogus\n"),
            Err(ConformanceError::UnknownSection {
                line: 3,
                name: "bogus".into()
            })
        );
        assert!(matches!(
            parse("-- asm\nexit\n-- asm\nexit\n"),
            Err(ConformanceError::DuplicateSection { line: 3, .. })
        ));
        assert_eq!(parse("-- result\n0x1\n"), Err(ConformanceError::NoProgram));
        let e = load(Path::new("/nonexistent/x.data")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.data"), "{e}");
    }

    #[test]
    fn list_files_sorts_files_and_directories() {
        let root = std::env::temp_dir().join(format!("fs-conf-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for f in ["b.data", "a.data", "notes.txt", "sub/c.data"] {
            std::fs::write(root.join(f), "-- asm\nexit\n").unwrap();
        }
        let got = list_files(&[root.join("notes.txt"), root.clone(), root.join("a.data")]).unwrap();
        assert_eq!(
            got,
            vec![
                root.join("a.data"),
                root.join("b.data"),
                root.join("notes.txt"),
                root.join("sub/c.data"),
            ]
        );
        assert!(matches!(
            list_files(&[root.join("missing")]),
            Err(ConformanceError::Io { .. })
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_suite_skips_outside_ci_and_fails_in_ci() {
        let d = PathBuf::from("/some/suite");
        assert_eq!(suite_decision("t", Some(d.clone()), true), Ok(Some(d)));
        assert_eq!(suite_decision("t", None, false), Ok(None));
        assert!(matches!(
            suite_decision("t", None, true),
            Err(ConformanceError::SuiteMissing { .. })
        ));
        assert!(default_suite_dir().ends_with("shared/bpf-conformance"));
    }
}
