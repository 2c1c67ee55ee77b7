//! `flowswitch trace` beyond the example files: a switch with a custom
//! eBPF action and `miss: flood`, several frames after one `--in-port`,
//! the text report, and the errors (bad hex, unknown port, a frame before
//! any --in-port) with exit code 1.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use controller::trace::hex;
use datapath::packet::build::{self, Builder, Ipv4, Udp};
use datapath::packet::csum;
use serde_json::Value;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fs-trace-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn trace(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .arg("trace")
        .arg(file)
        .args(args)
        .output()
        .expect("run flowswitch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Table 0: UDP to port 53 runs a custom action that rewrites the UDP
/// destination port to 5353 in the packet (fixing the checksum is the
/// program's business: it zeroes it, which UDP over IPv4 allows), then
/// goes to table 1, which has no flow for it: the miss floods.
const SWITCH: &str = "switch:
  name: t
  miss: flood
ports:
  - {id: 1, name: a}
  - {id: 2, name: b}
  - {id: 3, name: c}
tables:
  - id: 0
    flows:
      - name: dns
        priority: 10
        match: {udp_dst: 53}
        actions: [{ebpf: {asm: rewrite.s}}, {goto_table: 1}]
      - {name: rest, priority: 0, actions: [{output: 3}]}
  - id: 1
    flows:
      - {name: only-9, priority: 0, match: {udp_dst: 9}, actions: [drop]}
";

/// r6 = ctx; data, data_end; prove 42 bytes; udp dst = 5353 (0x14e9),
/// checksum 0.
const REWRITE: &str = "mov %r6, %r1
ldxdw %r2, [%r6+80]
ldxdw %r3, [%r6+88]
mov %r4, %r2
add %r4, 42
jgt %r4, %r3, done
stb [%r2+36], 0x14
stb [%r2+37], 0xe9
sth [%r2+40], 0
done:
mov %r0, 0
exit
";

fn udp(dport: u16, csum: bool) -> Vec<u8> {
    let mut f = Builder::new(A, B)
        .ipv4(Ipv4::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        ))
        .udp(Udp::new(1000, dport))
        .payload(b"query")
        .build();
    if !csum {
        f[40] = 0;
        f[41] = 0;
    }
    f
}

#[test]
fn custom_action_goto_and_miss_flood() {
    let d = tempdir("custom");
    std::fs::write(d.join("rewrite.s"), REWRITE).unwrap();
    let file = d.join("switch.yaml");
    std::fs::write(&file, SWITCH).unwrap();
    let q = udp(53, true);
    let rewritten = udp(5353, false);
    csum::verify(&rewritten).unwrap();
    let other = build::arp_request(A, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (q, rewritten, other) = (hex(&q), hex(&rewritten), hex(&other));
    for engine in ["jit", "interp"] {
        // One --in-port for the first two frames, another for the third.
        let out = trace(
            &file,
            &[
                "--in-port",
                "a",
                "--frame",
                &q,
                "--frame",
                &other,
                "--in-port",
                "2",
                "--frame",
                &q,
                "--json",
                "--engine",
                engine,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        let want: Value = serde_json::from_str(&format!(
            r#"[
            {{"tables":[{{"table":0,"flow":"dns"}},{{"table":1,"flow":null}}],
              "outputs":[{{"port":2,"frame":"{rewritten}"}},{{"port":3,"frame":"{rewritten}"}}],
              "drop_reason":null}},
            {{"tables":[{{"table":0,"flow":"rest"}}],
              "outputs":[{{"port":3,"frame":"{other}"}}],"drop_reason":null}},
            {{"tables":[{{"table":0,"flow":"dns"}},{{"table":1,"flow":null}}],
              "outputs":[{{"port":1,"frame":"{rewritten}"}},{{"port":3,"frame":"{rewritten}"}}],
              "drop_reason":null}}
            ]"#
        ))
        .unwrap();
        assert_eq!(got, want, "{engine}");
    }
    // The text report names flows, actions and frames.
    let out = trace(&file, &["--in-port", "1", "--frame", &q]);
    assert!(out.status.success());
    let t = text(&out.stdout);
    let want = format!(
        "frame 1: in_port 1, {} bytes, t = 0 ms\n  table 0: flow dns (priority 10): ebpf {}, goto_table 1\n  \
         table 1: no match: miss flood\n  sent to port 2 ({} bytes): {rewritten}\n  \
         sent to port 3 ({} bytes): {rewritten}\n",
        q.len() / 2,
        d.join("rewrite.s").display(),
        rewritten.len() / 2,
        rewritten.len() / 2
    );
    assert_eq!(t, want);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_arguments_exit_1_with_a_message() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/example.yaml");
    let f = hex(&udp(9, true));
    for (args, msg) in [
        (vec!["--in-port", "1", "--frame", "0g"], "not a hex digit"),
        (
            vec!["--in-port", "1", "--frame", "abc"],
            "odd number of hex digits",
        ),
        (
            vec!["--in-port", "9", "--frame", f.as_str()],
            "no port with id 9",
        ),
        (
            vec!["--in-port", "nope", "--frame", f.as_str()],
            "no port of that name",
        ),
        (
            vec!["--frame", f.as_str(), "--in-port", "1"],
            "no --in-port before it",
        ),
    ] {
        let out = trace(&file, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(msg),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    // A file with errors: its located errors, exit 1.
    let d = tempdir("bad");
    let bad = d.join("bad.yaml");
    std::fs::write(&bad, "switch: {name: x}\ntables: [{id: 0, flows: [{name: a, priority: 1, actions: [{output: 7}], bogus: 1}]}]\n").unwrap();
    let out = trace(&bad, &["--in-port", "1", "--frame", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.yaml:2:"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// ELF filter and action programs (datapath/src/ebpf/elf/testdata/maps.c)
/// keeping state in the switch's maps, which carry over from frame to
/// frame: a source is "known" once the counting action saw it twice.
#[test]
fn elf_programs_with_maps_carry_state_across_frames() {
    let obj = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datapath/src/ebpf/elf/testdata/maps.o")
        .canonicalize()
        .unwrap();
    let d = tempdir("elf");
    let file = d.join("switch.yaml");
    std::fs::write(
        &file,
        format!(
            "switch: {{name: e}}
ports: [{{id: 1, name: a}}, {{id: 2, name: b}}, {{id: 3, name: c}}]
tables:
  - id: 0
    flows:
      - name: known
        priority: 10
        match: {{ebpf: {{elf: {obj}, section: filter/known}}}}
        actions: [{{output: 3}}]
      - name: count
        priority: 5
        actions: [{{ebpf: {{elf: {obj}, section: action/count}}}}, {{output: 2}}]
",
            obj = obj.display()
        ),
    )
    .unwrap();
    let f = hex(&udp(9, true));
    for engine in ["jit", "interp"] {
        let mut args = vec!["--in-port", "1"];
        for _ in 0..4 {
            args.extend(["--frame", f.as_str()]);
        }
        args.extend(["--json", "--engine", engine]);
        let out = trace(&file, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        let flows: Vec<&str> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tables"][0]["flow"].as_str().unwrap())
            .collect();
        assert_eq!(flows, ["count", "count", "known", "known"], "{engine}");
        let ports: Vec<u64> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["outputs"][0]["port"].as_u64().unwrap())
            .collect();
        assert_eq!(ports, [2, 2, 3, 3], "{engine}");
    }
    // check counts the ELF programs and compiles them.
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("  compiled  4 programs, "),
        "{}",
        text(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&d);
}
