//! The ELF loader on `testdata/maps.c`: the committed build `maps.o`, and a
//! fresh one when clang is there (under `CI=true` it must be).

use std::path::Path;
use std::process::Command;

use super::*;
use crate::ebpf::insn::{decode, Op};

/// The committed build of `testdata/maps.c`.
pub const FIXTURE: &[u8] = include_bytes!("testdata/maps.o");

/// `testdata/maps.c` built now with clang, or `None` (with a note) when
/// there is no clang outside CI.
pub fn fresh_build() -> Option<Vec<u8>> {
    let clang = [
        "clang", "clang-14", "clang-15", "clang-16", "clang-17", "clang-18",
    ]
    .into_iter()
    .find(|c| Command::new(c).arg("--version").output().is_ok());
    let Some(clang) = clang else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "clang is required under CI (tests/run.sh installs it)"
        );
        eprintln!("clang not found: the ELF loader is tested on the committed maps.o only");
        return None;
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ebpf/elf/testdata/maps.c");
    let out = std::env::temp_dir().join(format!(
        "fs-elf-{}-{:?}.o",
        std::process::id(),
        std::thread::current().id()
    ));
    let st = Command::new(clang)
        .args(["-O2", "-Wall", "-Werror", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("runs clang");
    assert!(st.success(), "clang failed on {}", src.display());
    let bytes = std::fs::read(&out).expect("clang's output");
    let _ = std::fs::remove_file(&out);
    Some(bytes)
}

/// Both builds to test: the fixture, and the fresh one if any.
fn builds() -> Vec<Vec<u8>> {
    let mut v = vec![FIXTURE.to_vec()];
    v.extend(fresh_build());
    v
}

/// Every instruction with its slot.
fn ops(insns: &[Insn]) -> Vec<(usize, Op)> {
    let mut out = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let op = decode(insns, pc).unwrap_or_else(|e| panic!("slot {pc}: {e}"));
        out.push((pc, op));
        pc += op.slots();
    }
    out
}

/// Slots of the `lddw`s of `insns`, with their (kind, imm).
fn lddws(insns: &[Insn]) -> Vec<(usize, u8, u64)> {
    ops(insns)
        .into_iter()
        .filter_map(|(pc, op)| match op {
            Op::Lddw { kind, imm, .. } => Some((pc, kind, imm)),
            _ => None,
        })
        .collect()
}

const COUNTERS: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 8,
    max_entries: 4,
};
const SEEN: MapDef = MapDef {
    kind: MapKind::Hash,
    key_size: 8,
    value_size: 4,
    max_entries: 8,
};

#[test]
fn a_section_loads_with_its_maps_and_the_text_it_calls() {
    for bytes in builds() {
        let p = load(&bytes, "action/count").unwrap();
        assert_eq!(
            p.maps,
            vec![
                MapRef {
                    name: "counters".into(),
                    def: Some(COUNTERS)
                },
                MapRef {
                    name: "seen".into(),
                    def: Some(SEEN)
                },
            ]
        );
        // .text follows the section's code.
        assert!(p.insns.len() > p.section_len);
        // Every map lddw names a map by its position; the two references
        // to `seen` name the same one.
        let maps: Vec<_> = lddws(&p.insns)
            .into_iter()
            .map(|(_, k, i)| (k, i))
            .collect();
        assert_eq!(maps, vec![(LDDW_MAP, 0), (LDDW_MAP, 1), (LDDW_MAP, 1)]);
        // The call to `bucket` lands at the start of .text.
        let calls: Vec<_> = ops(&p.insns[..p.section_len])
            .into_iter()
            .filter_map(|(pc, op)| match op {
                Op::CallLocal { off } => Some(pc as i64 + 1 + i64::from(off)),
                _ => None,
            })
            .collect();
        assert_eq!(calls, vec![p.section_len as i64]);
    }
}

#[test]
fn sections_without_calls_or_with_other_maps() {
    for bytes in builds() {
        let p = load(&bytes, "filter/known").unwrap();
        assert_eq!(
            p.maps,
            vec![MapRef {
                name: "seen".into(),
                def: Some(SEEN)
            }]
        );
        assert_eq!(p.insns.len(), p.section_len);
        let maps: Vec<_> = lddws(&p.insns)
            .into_iter()
            .map(|(_, k, i)| (k, i))
            .collect();
        assert_eq!(maps, vec![(LDDW_MAP, 0)]);
    }
}

#[test]
fn binding_renumbers_maps_to_the_switch() {
    let mut p = load(FIXTURE, "action/count").unwrap();
    let switch = ["other", "seen", "counters"];
    p.bind(|m| switch.iter().position(|n| *n == m.name).map(|i| i as u32))
        .unwrap();
    let maps: Vec<_> = lddws(&p.insns).into_iter().map(|(_, _, i)| i).collect();
    assert_eq!(maps, vec![2, 1, 1]);
    assert!(p.maps.is_empty());
    let mut p = load(FIXTURE, "action/count").unwrap();
    assert_eq!(
        p.bind(|m| (m.name == "seen").then_some(0)),
        Err(ElfError::UnboundMap {
            name: "counters".into()
        })
    );
}

#[test]
fn bad_objects_and_sections_are_refused() {
    assert!(matches!(load(b"not an elf", "x"), Err(ElfError::Parse(_))));
    assert!(matches!(
        load(&FIXTURE[..100], "action/count"),
        Err(ElfError::Parse(_))
    ));
    match load(FIXTURE, "action/missing") {
        Err(ElfError::NoSection { name, available }) => {
            assert_eq!(name, "action/missing");
            assert!(available.contains("action/count") && available.contains("filter/known"));
        }
        other => panic!("{other:?}"),
    }
    match load(FIXTURE, "action/global") {
        Err(ElfError::GlobalData { symbol, target, .. }) => {
            assert_eq!(symbol, "global_counter");
            assert_eq!(target, ".bss");
        }
        other => panic!("{other:?}"),
    }
    // Not a BPF object: this test binary's own machine code is not.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(matches!(
        load(&exe, ".text"),
        Err(ElfError::NotBpf(_) | ElfError::Parse(_))
    ));
}
