//! The namespace side of `flowswitch up`, without a switch: the "switch"
//! each test starts is a veth pair whose ends carry the two hosts' TAP
//! names, so the hosts are wired back to back. This checks the names and
//! their refusal, the namespaces and addresses,
//! the checks (pingall, iperf3 and the built-in bulk test,
//! expect_no_ping), the teardown, and `down` after a crash.
//!
//! Privileged: needs root, `ip` and `ping`. Outside CI it skips without
//! them; under `CI=true` it fails. Every name carries this process's id.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use controller::up::{self, checks, netns, UpError, UpOpts};

/// A scratch directory for this process, used as the run directory too.
fn scratch() -> PathBuf {
    static INIT: Once = Once::new();
    let d = std::env::temp_dir().join(format!("fs-up-netns-{}", std::process::id()));
    INIT.call_once(|| std::fs::create_dir_all(&d).expect("scratch dir"));
    d
}

fn opts(check: bool, tag: char) -> UpOpts {
    UpOpts {
        check,
        prefix: prefix(tag),
        run_dir: scratch(),
    }
}

/// Writes a two-host topology named `name` and returns its path.
fn topology(name: &str, vlan: Option<u16>, checks: &str) -> PathBuf {
    let vlan = vlan.map_or(String::new(), |v| format!(", vlan: {v}"));
    let text = format!(
        "name: {name}\nflows: {}\nhosts:\n  - {{name: h1, port: 1, ip: 10.9.0.1/24{vlan}}}\n  - {{name: h2, port: 2, ip: 10.9.0.2/24{vlan}}}\nchecks:\n{checks}",
        common::repo().join("flows/l2-learning.yaml").display()
    );
    let path = scratch().join(format!("{name}.yaml"));
    std::fs::write(&path, text).expect("write topology");
    path
}

/// A unique prefix per test: `t<tag><pid>-`.
fn prefix(tag: char) -> String {
    format!("t{tag}{}-", std::process::id() % 1_000_000)
}

/// The stand-in switch: a veth pair named as the two TAPs.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        // Gone already if its ends were moved into namespaces since deleted.
        if netns::link_exists(&self.0) {
            let _ = netns::ip(&["link", "delete", &self.0]);
        }
    }
}

fn veth(
    _topo: &controller::model::TopologyPlan,
    plan: &controller::model::SwitchPlan,
    _vlans: &[up::HostVlan],
) -> Result<Veth, String> {
    let a = plan.ports[0].name.clone();
    let b = plan.ports[1].name.clone();
    netns::ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])
        .map_err(|e| e.to_string())?;
    Ok(Veth(a))
}

#[test]
fn two_hosts_back_to_back_pass_their_checks_and_go_away() {
    if !common::prerequisites("two_hosts_back_to_back_pass_their_checks_and_go_away") {
        return;
    }
    let name = format!("upa{}", std::process::id());
    let path = topology(
        &name,
        None,
        "  - pingall\n  - {iperf: {from: h1, to: h2, seconds: 1}}\n",
    );
    let opts = opts(true, 'a');
    let up = up::bring_up(&path, &opts, veth).expect("up");
    let ns: Vec<String> = up.names.iter().map(|h| h.namespace.clone()).collect();
    assert!(ns.iter().all(|n| netns::namespace_exists(n)));
    let results = up.run_checks();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    assert!(results[0].detail.starts_with("2/2 pairs"), "{results:?}");
    // The built-in bulk test, run by the real binary in the namespaces.
    let hosts = up.hosts();
    let gbps = checks::builtin(
        &hosts[0],
        &hosts[1],
        1,
        Path::new(env!("CARGO_BIN_EXE_flowswitch")),
    )
    .expect("built-in bulk test");
    assert!(gbps > 0.0);
    // Connected: expect_no_ping must fail.
    assert!(!checks::expect_no_ping(&hosts[0], &hosts[1]).ok);
    // h2's link down: now it must pass.
    hosts[1]
        .ns
        .ip(&["link", "set", "dev", &up.names[1].tap, "down"])
        .expect("link down");
    assert!(checks::expect_no_ping(&hosts[0], &hosts[1]).ok);
    drop(hosts);
    drop(up);
    assert!(ns.iter().all(|n| !netns::namespace_exists(n)), "{ns:?}");
    assert!(!scratch().join(format!("{name}.up.json")).exists());
}

#[test]
fn names_that_exist_are_refused_and_left_alone() {
    if !common::prerequisites("names_that_exist_are_refused_and_left_alone") {
        return;
    }
    let name = format!("upr{}", std::process::id());
    let path = topology(&name, None, "  - pingall\n");
    let p = prefix('r');
    // Someone else's namespace with h2's name.
    let theirs = format!("{p}h2");
    netns::ip(&["netns", "add", &theirs]).expect("netns add");
    let opts = UpOpts {
        prefix: p.clone(),
        ..opts(true, 'r')
    };
    let err = up::bring_up(&path, &opts, veth).err().expect("refused");
    assert!(
        matches!(&err, UpError::Netns(netns::NetnsError::NamespaceExists(n)) if *n == theirs),
        "{err}"
    );
    assert!(netns::namespace_exists(&theirs), "not deleted");
    assert!(!netns::namespace_exists(&format!("{p}h1")), "nothing made");
    netns::ip(&["netns", "delete", &theirs]).expect("netns delete");
    // An interface with a TAP's name.
    let tap = format!("fs-{p}h1");
    let peer = format!("fs-{p}x");
    netns::ip(&["link", "add", &tap, "type", "veth", "peer", "name", &peer]).expect("veth");
    let err = up::bring_up(&path, &opts, veth).err().expect("refused");
    assert!(
        matches!(&err, UpError::Netns(netns::NetnsError::LinkExists(n)) if *n == tap),
        "{err}"
    );
    assert!(netns::link_exists(&tap));
    netns::ip(&["link", "delete", &tap]).expect("delete veth");
}

#[test]
fn down_cleans_up_after_a_crash() {
    if !common::prerequisites("down_cleans_up_after_a_crash") {
        return;
    }
    let name = format!("upd{}", std::process::id());
    let path = topology(&name, None, "  - pingall\n");
    let opts = opts(false, 'd');
    let up = up::bring_up(&path, &opts, veth).expect("up");
    let ns: Vec<String> = up.names.iter().map(|h| h.namespace.clone()).collect();
    // A crash: nothing is torn down.
    std::mem::forget(up);
    assert!(ns.iter().all(|n| netns::namespace_exists(n)));
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .args(["down", &name])
        .env("FLOWSWITCH_RUN_DIR", scratch())
        .output()
        .expect("flowswitch down");
    // The state file names this (live) test process: refused.
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still up"),
        "{out:?}"
    );
    // From the process that made it (as after a restart), it goes.
    let deleted = up::down(&scratch(), &name).expect("down");
    assert_eq!(deleted.len(), 2);
    assert!(ns.iter().all(|n| !netns::namespace_exists(n)));
    assert!(matches!(
        up::down(&scratch(), &name),
        Err(UpError::NotUp { .. })
    ));
}
