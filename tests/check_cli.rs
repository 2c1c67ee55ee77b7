//! End-to-end tests of `flowswitch check FILE`: exit codes, the summary on
//! stdout, errors (with file:line:col) and warnings on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `flowswitch check FILE` in the repository root.
fn check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .current_dir(repo())
        .arg("check")
        .arg(file)
        .output()
        .expect("run flowswitch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fs-check-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_yaml_md_example_prints_a_summary_and_exits_0() {
    let out = check(Path::new("flows/example.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let want = [
        "flows/example.yaml: switch `br0`",
        "  threads   2",
        "  miss      drop",
        "  ports     3: 1 fs-h1, 2 fs-h2, 3 fs-vm",
        "  meters    1: slow (10000 kbps, burst 64 kB)",
        "  table 0   4 flows (4 match alternatives)",
        "  table 1   1 flow (1 match alternative)",
        "  compiled  5 programs, N instructions in T ms",
        "ok: 2 tables, 5 flows",
    ];
    // The compile line's instruction count and time vary with the compiler
    // and the machine.
    let got: Vec<String> = stdout
        .lines()
        .map(|l| match l.strip_prefix("  compiled  5 programs, ") {
            Some(rest) => {
                let (n, t) = rest.split_once(" instructions in ").unwrap_or(("", ""));
                assert!(n.parse::<usize>().is_ok_and(|n| n > 0), "{l}");
                assert!(t.ends_with(" ms"), "{l}");
                "  compiled  5 programs, N instructions in T ms".to_string()
            }
            None => l.to_string(),
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn every_example_file_checks_clean() {
    for dir in ["flows", "topologies"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = e.unwrap().path();
            let out = check(&path);
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {stdout}{}",
                path.display(),
                text(&out.stderr)
            );
            assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
            assert!(stdout.lines().last().unwrap_or("").starts_with("ok: "));
        }
    }
}

#[test]
fn a_topology_summary_shows_hosts_checks_and_its_switch() {
    let out = check(Path::new("topologies/star.yaml"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "topologies/star.yaml: topology `star`");
    assert!(lines[1].starts_with("  hosts     8: h1 (port 1, 10.0.1.1/24, 02:00:00:00:01:01)"));
    assert_eq!(
        lines[2],
        "  checks    3: pingall, iperf h2 -> h1 3 s, iperf h3 -> h8 3 s"
    );
    assert_eq!(lines[3], "flows/star.yaml: switch `star`");
    assert_eq!(lines.last(), Some(&"ok: 1 table, 9 flows"));
}

#[test]
fn errors_go_to_stderr_with_their_places_and_exit_1() {
    let dir = tempdir("bad");
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "switch: {name: br0}
ports: [{id: 1, name: p1}]
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, match: {eth_src: \"02:00:00:00:00:zz\"}}
",
    )
    .unwrap();
    let out = check(&f);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(
        lines[0],
        format!(
            "{}:6:49: tables[0].flows[0].match.eth_src: `02:00:00:00:00:zz` is not a MAC address: bad byte `zz`",
            f.display()
        )
    );
    assert_eq!(lines[1], format!("{}: 1 error", f.display()));

    // Several validation errors are all reported, in file order.
    std::fs::write(
        &f,
        "switch: {name: br0}
ports: [{id: 1, name: p1}]
tables:
  - id: 0
    flows:
      - {name: a, priority: 1, actions: [{output: 2}]}
      - {name: a, priority: 1, actions: [{goto_table: 0}]}
",
    )
    .unwrap();
    let out = check(&f);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let fname = f.display().to_string();
    assert_eq!(lines.len(), 5, "{stderr}");
    assert!(lines[0].starts_with(&format!("{fname}:6:51: port `2` is not defined")));
    assert!(lines[1].starts_with(&format!(
        "{fname}:7:9: flows `a` and `a` in table 0 both have priority 1"
    )));
    assert!(lines[2].starts_with(&format!("{fname}:7:16: duplicate flow name `a`")));
    assert!(lines[3].starts_with(&format!("{fname}:7:55: goto_table 0 from table 0")));
    assert_eq!(lines[4], format!("{fname}: 4 errors"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn warnings_do_not_fail_the_check() {
    // The topology example of yaml.md, as written: its last check names a
    // host it does not have.
    let dir = tempdir("warn");
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::create_dir_all(dir.join("topologies")).unwrap();
    std::fs::copy(
        repo().join("flows/l2-learning.yaml"),
        dir.join("flows/l2-learning.yaml"),
    )
    .unwrap();
    let topo = dir.join("topologies/t.yaml");
    std::fs::write(
        &topo,
        "name: two-hosts
flows: ../flows/l2-learning.yaml
hosts:
  - {name: h1, port: 1, ip: 10.0.0.1/24, mac: \"02:00:00:00:00:01\"}
  - {name: h2, port: 2, ip: 10.0.0.2/24, mac: \"02:00:00:00:00:02\"}
checks:
  - pingall
  - {iperf: {from: h1, to: h2, seconds: 5}}
  - {expect_no_ping: {from: h1, to: h3}}
",
    )
    .unwrap();
    let out = check(&topo);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:9:37: warning: `h3` is not a host of this topology, so this check cannot fail\n",
            topo.display()
        )
    );
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("ok: 1 table, 1 flow")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_file_or_an_unknown_kind_exits_1() {
    let out = check(Path::new("flows/does-not-exist.yaml"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("flows/does-not-exist.yaml:1:1: cannot read the file:"),
        "{stderr}"
    );

    // A device that never ends is refused at the size limit, not read into
    // memory.
    let out = check(Path::new("/dev/zero"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("/dev/zero:1:1: cannot read the file: larger than 67108864 bytes"),
        "{stderr}"
    );

    let dir = tempdir("kind");
    let f = dir.join("what.yaml");
    std::fs::write(&f, "colour: blue\n").unwrap();
    let out = check(&f);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(":1:1: neither a switch file"));
    std::fs::remove_dir_all(&dir).unwrap();
}
