//! The control socket end to end: an in-process switch on memory ports
//! serves its socket in a temporary run directory, and the `flowswitch ctl`
//! binary talks to it: every verb, its human and JSON output, exit codes,
//! malformed requests, the socket's modes, and a non-root client refused
//! (run as user 65534 with `setpriv`; skipped without root or setpriv,
//! failing instead under CI=true).

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use controller::control::client::Client;
use controller::control::Request;
use controller::switchd::watch::WatchOptions;
use controller::switchd::{Clock, Options, Serving, Switchd};
use controller::trace::hex;
use datapath::dp::pipeline::{Worker, WorkerConfig};
use datapath::dp::port::{MemPort, Port};
use datapath::ebpf::engine::Engine;
use datapath::packet::build;
use serde_json::Value;

const SWITCH: &str = "switch: {name: ctl-sw}
ports:
  - {id: 1, name: p1}
  - {id: 2, name: p2}
  - {id: 3, name: p3}
tables:
  - id: 0
    flows:
      - {name: to2, priority: 10, match: {in_port: 1}, actions: [{output: 2}]}
      - {name: to1, priority: 10, match: {in_port: 2}, actions: [{output: 1}]}
";

/// A temporary directory (mode 0755), removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fields drop in order: the server stops before its directory goes.
struct Rig {
    serving: Serving,
    file: PathBuf,
    run_dir: PathBuf,
    sw: Arc<Switchd>,
    ports: Vec<Arc<MemPort>>,
    worker: Worker,
    dir: Dir,
}

fn rig(tag: &str) -> Rig {
    rig_with(tag, None)
}

fn rig_with(tag: &str, watch: Option<WatchOptions>) -> Rig {
    let d = std::env::temp_dir().join(format!("fs-ctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = Dir(d);
    let file = dir.0.join("sw.yaml");
    std::fs::write(&file, SWITCH).unwrap();
    let opts = Options {
        engine: Engine::Jit,
        workers: 1,
        clock: Clock::manual(0),
        name: None,
    };
    let (sw, ports) = Switchd::in_memory(&file, opts).unwrap();
    let worker = sw
        .datapath()
        .unwrap()
        .worker(0, WorkerConfig::default())
        .unwrap();
    let run_dir = dir.0.join("run");
    let serving = sw.serve(&run_dir, watch).unwrap();
    Rig {
        dir,
        file,
        run_dir,
        sw,
        ports,
        worker,
        serving,
    }
}

fn frame() -> Vec<u8> {
    build::udp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        1000,
        9,
        b"payload",
    )
}

impl Rig {
    fn send(&mut self, port: u32, n: usize) {
        let p = Arc::clone(self.ports.iter().find(|p| p.id() == port).unwrap());
        for _ in 0..n {
            p.push_rx(&frame());
        }
        while p.rx_pending() > 0 {
            self.worker.poll(64, 0).unwrap();
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flowswitch"))
            .arg("ctl")
            .arg("--run-dir")
            .arg(&self.run_dir)
            .arg("ctl-sw")
            .args(args)
            .output()
            .expect("run flowswitch")
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_verb_through_flowswitch_ctl() {
    let mut r = rig("verbs");
    r.send(1, 3);
    let o = r.ctl(&["dump-flows"]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let len = frame().len();
    let row = format!("table=0 priority=10 name=to2 packets=3 bytes={}", 3 * len);
    assert!(text.contains(&row), "{text}");
    assert!(text.contains("match: in_port=1"), "{text}");
    assert!(text.contains("actions: output 2"), "{text}");
    let o = r.ctl(&["--json", "dump-flows"]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let to2 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "to2")
        .unwrap();
    assert_eq!(to2["packets"], 3);
    assert_eq!(to2["idle_age_ms"], Value::Null, "stamped at t = 0: never");

    let o = r.ctl(&["dump-ports"]);
    let p1 = format!("port 1 p1: rx 3 pkts {} bytes 0 drops, tx 0 pkts", 3 * len);
    let p2 = format!(
        "port 2 p2: rx 0 pkts 0 bytes 0 drops, tx 3 pkts {} bytes 0 drops",
        3 * len
    );
    assert!(out(&o).contains(&p1), "{}", out(&o));
    assert!(out(&o).contains(&p2), "{}", out(&o));
    let o = r.ctl(&["stats"]);
    assert!(
        out(&o).contains("table 0: 3 lookups, 3 matched, 0 missed"),
        "{}",
        out(&o)
    );

    let o = r.ctl(&[
        "add-flow",
        "{name: from3, priority: 5, match: {in_port: p3}, actions: [{output: p1}], idle_timeout: 9}",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with("added: generation"), "{}", out(&o));
    assert!(
        out(&o).contains("2 kept their counters, 1 new"),
        "{}",
        out(&o)
    );
    let o = r.ctl(&[
        "add-flow",
        "{name: bad, priority: 1, actions: [{output: 8}]}",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("add-flow:1:"), "{}", err(&o));
    let o = r.ctl(&["dump-flows"]);
    assert!(
        out(&o).contains("name=from3 (added) packets=0"),
        "{}",
        out(&o)
    );
    let o = r.ctl(&["del-flows", "--name", "from3"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = r.ctl(&["del-flows", "--name", "from3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no flow named `from3`"), "{}", err(&o));

    // A bad file: exit 1, located error, the old table keeps forwarding.
    std::fs::write(&r.file, SWITCH.replace("output: 2", "outptu: 2")).unwrap();
    let o = r.ctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    let at = format!("{}:9:", r.file.display());
    assert!(err(&o).contains(&at), "{}", err(&o));
    r.send(1, 1);
    let p2 = r.ports.iter().find(|p| p.id() == 2).unwrap();
    assert_eq!(p2.take_tx().len(), 4);
    std::fs::write(&r.file, SWITCH).unwrap();
    let o = r.ctl(&["reload"]);
    assert!(out(&o).contains("2 kept their counters"), "{}", out(&o));
    // reload FILE, relative to the client's directory.
    let other = r.dir.0.join("other.yaml");
    std::fs::write(
        &other,
        SWITCH.replace(
            "priority: 10, match: {in_port: 2}",
            "priority: 11, match: {in_port: 2}",
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .current_dir(&r.dir.0)
        .args(["ctl", "--json"])
        .arg(r.serving.server.path())
        .args(["reload", "other.yaml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (rep["kept"].as_u64(), rep["fresh"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r.sw.path(), other);
}

#[test]
fn live_trace_prints_what_the_offline_trace_prints() {
    let r = rig("trace");
    let hexf = hex(&frame());
    for json in [false, true] {
        let mut args = vec!["trace", "--in-port", "p1", "--frame", hexf.as_str()];
        if json {
            args.push("--json");
        }
        let live = r.ctl(&args);
        assert!(live.status.success(), "{}", err(&live));
        let offline = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
            .arg("trace")
            .arg(&r.file)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(offline.status.success(), "{}", err(&offline));
        assert_eq!(out(&live), out(&offline));
        assert!(out(&live).contains("to2"));
    }
    let o = r.ctl(&["trace", "--in-port", "p1", "--frame", "zz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not a hex digit"), "{}", err(&o));
}

#[test]
fn malformed_requests_get_errors_and_the_server_keeps_serving() {
    let r = rig("malformed");
    let path = r.serving.server.path().to_path_buf();
    let mut c = Client::connect(&path).unwrap();
    for bad in [
        "{",
        "[1,2]",
        r#"{"cmd":"fly"}"#,
        r#"{"cmd":"stats","x":1}"#,
        "null",
    ] {
        let resp = c.raw(bad).unwrap();
        assert!(!resp.ok, "{bad}");
        assert!(resp.error.unwrap().starts_with("bad request"), "{bad}");
    }
    let resp = c.raw(r#"{"cmd":"del-flows"}"#).unwrap();
    assert_eq!(
        resp.error.as_deref(),
        Some("del-flows needs a name or a table")
    );
    // Not UTF-8, on a raw connection; then a good request on the same one.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"\xff\xfe\n{\"cmd\":\"stats\"}\n").unwrap();
    let mut buf = String::new();
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == b'\n').count() < 2 {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    buf.push_str(&String::from_utf8_lossy(&got));
    let lines: Vec<&str> = buf.lines().collect();
    assert!(lines[0].contains("\"ok\":false"), "{buf}");
    assert!(lines[1].contains("\"ok\":true"), "{buf}");
    let resp = c.request(&Request::Stats {}).unwrap();
    assert!(resp.ok);
    assert_eq!(resp.result.unwrap()["switch"], "ctl-sw");
}

#[test]
fn socket_and_directory_modes_and_a_second_server_is_refused() {
    let r = rig("modes");
    let sock = r.serving.server.path().to_path_buf();
    assert_eq!(sock, r.run_dir.join("ctl-sw.sock"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(&r.run_dir), 0o755);
    let again = r.sw.serve(&r.run_dir, None);
    assert!(again.unwrap_err().to_string().contains("already serving"));
    drop(r.serving);
    assert!(!sock.exists(), "the socket is removed when serving stops");
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn a_non_root_client_is_refused_even_with_an_open_socket_mode() {
    let root = datapath::sys::cred::effective_uid() == 0;
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !root || !setpriv {
        assert!(
            !ci(),
            "CI=true: this test needs root and setpriv (root {root}, setpriv {setpriv})"
        );
        eprintln!("skipped: needs root and setpriv (root {root}, setpriv {setpriv})");
        return;
    }
    let r = rig("nonroot");
    let sock = r.serving.server.path().to_path_buf();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the binary that user 65534 can reach and run.
    let bin = r.dir.0.join("flowswitch");
    std::fs::copy(env!("CARGO_BIN_EXE_flowswitch"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |as_nobody: bool| {
        let mut c = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        c.arg("ctl").arg(&sock).arg("stats").output().unwrap()
    };
    let o = run(true);
    assert_eq!(o.status.code(), Some(1), "{} {}", out(&o), err(&o));
    assert!(
        err(&o).contains("permission denied: user 65534"),
        "{}",
        err(&o)
    );
    let o = run(false);
    assert!(o.status.success(), "root is served: {}", err(&o));
    assert!(out(&o).contains("switch ctl-sw"));
}

/// Waits (bounded) until the switch has made `n` reloads.
fn wait_reloads(sw: &Switchd, n: u64) -> u64 {
    for _ in 0..1_000 {
        let got = sw.stats().reloads;
        if got >= n {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    sw.stats().reloads
}

#[test]
fn the_watcher_reloads_on_a_file_change_and_on_sighup() {
    let r = rig_with(
        "watch",
        Some(WatchOptions {
            interval: std::time::Duration::from_millis(20),
            ..WatchOptions::default()
        }),
    );
    assert_eq!(r.sw.stats().reloads, 0);
    std::fs::write(
        &r.file,
        SWITCH.replace(
            "priority: 10, match: {in_port: 2}",
            "priority: 12, match: {in_port: 2}",
        ),
    )
    .unwrap();
    assert_eq!(wait_reloads(&r.sw, 1), 1);
    let rows = r.sw.dump_flows();
    assert_eq!(
        rows.iter().find(|f| f.name == "to1").map(|f| f.priority),
        Some(12)
    );
    let st = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(wait_reloads(&r.sw, 2), 2);
    // The control socket serves alongside.
    let o = r.ctl(&["stats"]);
    assert!(out(&o).contains("reloads: 2 ok, 0 refused"), "{}", out(&o));
}
