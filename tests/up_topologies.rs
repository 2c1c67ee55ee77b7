//! Every topology in topologies/ passes `flowswitch up --check`: the
//! binary builds the namespaces and TAPs, runs the switch, runs the
//! topology's checks (pingall, iperf, expect_no_ping) and tears down.
//!
//! Privileged: needs root, /dev/net/tun, `ip` and `ping` (iperf3 when
//! installed, else the built-in bulk test). Outside CI it skips without
//! them; under `CI=true` it fails. Each test uses its own name prefix
//! (a letter and this process's id), so the tests run in parallel and
//! beside anything else on the machine.

mod common;

use std::process::Command;

use controller::up::netns;

/// A short prefix unique to this test and process: TAP names are
/// `fs-PREFIX HOST` and must fit in 15 bytes (`quarant` is 7).
fn prefix(tag: char) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let pid = std::process::id() as usize;
    let a = DIGITS[pid % 36] as char;
    let b = DIGITS[(pid / 36) % 36] as char;
    format!("{tag}{a}{b}")
}

/// Runs `up --check` on `file`; returns the output after checking the
/// exit status and that nothing was left behind.
fn up_check(file: &str, tag: char) -> String {
    let p = prefix(tag);
    let run_dir = std::env::temp_dir().join(format!("fs-up-topo-{tag}-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .current_dir(common::repo())
        .args(["up", file, "--check", "--prefix", &p])
        .env("FLOWSWITCH_RUN_DIR", &run_dir)
        .output()
        .expect("run flowswitch up");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{file}: exit {:?}\n{text}",
        out.status
    );
    assert!(text.contains("tearing down"), "{text}");
    // Nothing left: no namespace or TAP with this prefix.
    let topo =
        controller::model::load_topology(&common::repo().join(file)).expect("topology loads");
    for h in &topo.hosts {
        assert!(
            !netns::namespace_exists(&format!("{p}{}", h.name)),
            "{text}"
        );
        assert!(!netns::link_exists(&format!("fs-{p}{}", h.name)), "{text}");
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    text
}

/// The results table's row for `check`: its result column.
fn result(text: &str, check: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix(check))
        .filter_map(|rest| rest.split_whitespace().next())
        .find(|r| *r == "ok" || *r == "FAIL")
        .unwrap_or_else(|| panic!("no row {check:?} in:\n{text}"))
        .to_string()
}

#[test]
fn two_hosts() {
    if !common::prerequisites("two_hosts") {
        return;
    }
    let t = up_check("topologies/two-hosts.yaml", 'w');
    assert_eq!(result(&t, "pingall"), "ok", "{t}");
    assert!(t.contains("2/2 pairs answered"), "{t}");
    assert_eq!(result(&t, "iperf h1 -> h2 (5 s)"), "ok", "{t}");
}

#[test]
fn vlan_trunk_isolates_the_vlans() {
    if !common::prerequisites("vlan_trunk_isolates_the_vlans") {
        return;
    }
    let t = up_check("topologies/vlan-trunk.yaml", 'v');
    for row in [
        "iperf h1 -> h3 (3 s)",
        "iperf h2 -> h4 (3 s)",
        "expect_no_ping h1 -> h2",
        "expect_no_ping h1 -> h4",
        "expect_no_ping h3 -> h4",
    ] {
        assert_eq!(result(&t, row), "ok", "{row}\n{t}");
    }
}

#[test]
fn acl_allows_the_client_and_blocks_quarantine() {
    if !common::prerequisites("acl_allows_the_client_and_blocks_quarantine") {
        return;
    }
    let t = up_check("topologies/acl.yaml", 'a');
    for row in [
        "iperf client -> server (3 s)",
        "expect_no_ping quarant -> server",
        "expect_no_ping quarant -> client",
    ] {
        assert_eq!(result(&t, row), "ok", "{row}\n{t}");
    }
}

#[test]
fn star_of_eight() {
    if !common::prerequisites("star_of_eight") {
        return;
    }
    let t = up_check("topologies/star.yaml", 's');
    assert!(t.contains("56/56 pairs answered"), "{t}");
    assert_eq!(result(&t, "iperf h2 -> h1 (3 s)"), "ok", "{t}");
    assert_eq!(result(&t, "iperf h3 -> h8 (3 s)"), "ok", "{t}");
}

/// A failing check makes `up --check` exit 1 (and still tear down).
#[test]
fn a_failing_check_exits_1() {
    if !common::prerequisites("a_failing_check_exits_1") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("fs-up-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("fail.yaml");
    // h1 and h2 share a learning switch, so "no ping" is wrong.
    std::fs::write(
        &file,
        format!(
            "name: upfail{}\nflows: {}\nhosts:\n  - {{name: h1, port: 1, ip: 10.8.0.1/24}}\n  - {{name: h2, port: 2, ip: 10.8.0.2/24}}\nchecks:\n  - {{expect_no_ping: {{from: h1, to: h2}}}}\n",
            std::process::id(),
            common::repo().join("flows/l2-learning.yaml").display()
        ),
    )
    .expect("write");
    let p = prefix('f');
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .args(["up"])
        .arg(&file)
        .args(["--check", "--prefix", &p])
        .env("FLOWSWITCH_RUN_DIR", &dir)
        .output()
        .expect("run flowswitch up");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(result(&text, "expect_no_ping h1 -> h2"), "FAIL", "{text}");
    assert!(!netns::namespace_exists(&format!("{p}h1")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flowswitch up` without `--check` stays up and serves the control
/// socket `<run dir>/<topology name>.sock`: `ctl dump-flows` counts the
/// pings its flow carried, `ctl dump-ports` shows the hosts' TAPs, a
/// reload of the same file is taken, and a reload that would change the
/// ports is refused (the TAPs are wired into namespaces). SIGINT tears
/// everything down and exits 0.
#[test]
fn ctl_on_a_topology_that_is_up() {
    if !common::prerequisites("ctl_on_a_topology_that_is_up") {
        return;
    }
    let p = prefix('c');
    let dir = std::env::temp_dir().join(format!("fs-up-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Its own topology file (a name no other test uses), on the shared
    // learning switch file.
    let file = dir.join("ctl.yaml");
    let name = format!("upctl{}", std::process::id());
    let topology = |ports: &str| {
        format!(
            "name: {name}\nflows: {}\nhosts:\n  - {{name: h1, port: 1, ip: 10.9.0.1/24}}\n  - {{name: h2, port: 2, ip: 10.9.0.2/24}}\n{ports}",
            common::repo().join("flows/l2-learning.yaml").display()
        )
    };
    std::fs::write(&file, topology("")).expect("write");
    let child = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .args(["up"])
        .arg(&file)
        .args(["--prefix", &p, "--run-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start flowswitch up");
    let mut guard = common::ChildGuard(Some(child));
    let socket = dir.join(format!("{name}.sock"));
    assert!(common::wait_for(|| socket.exists()), "no control socket");
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flowswitch"))
            .arg("ctl")
            .arg("--run-dir")
            .arg(&dir)
            .arg(&name)
            .args(args)
            .output()
            .expect("run flowswitch ctl")
    };
    let json = |verb: &str| -> serde_json::Value {
        let o = ctl(&["--json", verb]);
        assert!(
            o.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{verb}: {e}"))
    };
    // The namespaces are attached once the socket is there; ping h1 -> h2.
    let ns1 = format!("{p}h1");
    let pinged = common::wait_for(|| {
        Command::new("ip")
            .args([
                "netns", "exec", &ns1, "ping", "-c", "3", "-i", "0.2", "-W", "2",
            ])
            .arg("10.9.0.2")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(pinged, "no ping between the hosts");
    let flows = json("dump-flows");
    let learn = flows
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == "learn"))
        .unwrap_or_else(|| panic!("no flow `learn` in {flows}"));
    assert!(learn["packets"].as_u64().unwrap_or(0) >= 6, "{learn}");
    let ports = json("dump-ports").to_string();
    for h in ["h1", "h2"] {
        assert!(ports.contains(&format!("fs-{p}{h}")), "{ports}");
    }
    let o = ctl(&["reload"]);
    assert!(
        o.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A third host would need a new port: refused, the switch unchanged.
    std::fs::write(
        &file,
        topology("").replace(
            "hosts:\n",
            "hosts:\n  - {name: h3, port: 3, ip: 10.9.0.3/24}\n",
        ),
    )
    .expect("write");
    let o = ctl(&["reload"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ports"), "{err}");
    let mut child = guard.0.take().expect("child");
    common::signal(child.id(), "INT");
    let status = common::wait_exit(&mut child, 30);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {stderr}");
    assert!(stderr.contains("tearing down"), "{stderr}");
    assert!(!socket.exists(), "the socket outlived the topology");
    assert!(!netns::namespace_exists(&ns1), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
