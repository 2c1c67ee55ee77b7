//! The switch on TAP devices under its controller, end to end: a switch
//! started in-process ([`RunningSwitch::controlled`]) between two network
//! namespaces serves its control socket in a temporary run directory, and
//! the `flowswitch ctl` binary (or the socket's client) talks to it.
//!
//! - `ctl dump-flows` counts the pings the flows carried, `ctl dump-ports`
//!   the TAP ports' packets, and `ctl reload` of a changed file installs it
//!   with the counters of the unchanged flows carried over; a port added
//!   to the file gets its TAP at the reload, a port removed loses it, a
//!   port whose settings changed is refused.
//! - The reload storm: while iperf3 streams TCP, the file alternates
//!   between two versions that both carry the traffic (one has an extra
//!   flow that no packet of the test matches) and is reloaded 300 times,
//!   every 100 ms (30 s). The iperf3 stream must outlast the storm and
//!   finish; checked transfers run alongside (every byte compared); the
//!   switch must have sent on each port exactly the bytes it received on
//!   the other, and no port or switch drop counter may move (the flows
//!   drop nothing). iperf3's own `sum_sent` and `sum_received` are
//!   printed but not compared: iperf3 (3.12) stops counting at the
//!   server when the test ends, leaving out the bytes still in flight,
//!   even on loopback with no switch at all.
//!
//! Namespaces, TAP and file names carry the process id and a test tag; a
//! guard removes them on every exit. Without root, `/dev/net/tun`, `ip`,
//! `ping` (or `iperf3` for the storm) a test prints that it skipped, and
//! fails under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ping, prerequisites, prerequisites_with, transfer, wait_for, ChildGuard, Net};
use controller::control::client::Client;
use controller::control::{socket_path, Request};
use controller::run::{RunOptions, RunningSwitch};
use controller::switchd::watch::WatchOptions;
use controller::switchd::{Serving, Switchd};
use serde_json::Value;

/// The switch file: pings counted by their own flows, everything else
/// forwarded port to port; `extra` adds a flow that no packet of these
/// tests matches (UDP to port 9), so that two versions differ.
fn switch_yaml(t1: &str, t2: &str, extra: bool) -> String {
    let mut y = format!(
        "switch: {{name: rc, threads: 2, miss: drop}}
ports:
  - {{id: 1, name: {t1}, offload: true, queues: 2}}
  - {{id: 2, name: {t2}, offload: true, queues: 2}}
tables:
  - id: 0
    flows:
      - {{name: ping12, priority: 20, match: {{in_port: 1, eth_type: ipv4, ip_proto: icmp}}, actions: [{{output: 2}}]}}
      - {{name: ping21, priority: 20, match: {{in_port: 2, eth_type: ipv4, ip_proto: icmp}}, actions: [{{output: 1}}]}}
      - {{name: fwd12, priority: 10, match: {{in_port: 1}}, actions: [{{output: 2}}]}}
      - {{name: fwd21, priority: 10, match: {{in_port: 2}}, actions: [{{output: 1}}]}}
"
    );
    if extra {
        y += "      - {name: extra, priority: 30, match: {in_port: 1, eth_type: ipv4, udp_dst: 9}, actions: [{output: 2}]}\n";
    }
    y
}

/// A test's switch, socket and namespaces; fields drop in order: the
/// socket and watcher stop, then the switch (its TAPs go), then the
/// namespaces and the files.
struct Rig {
    serving: Option<Serving>,
    switchd: Arc<Switchd>,
    sw: Arc<RunningSwitch>,
    net: Net,
    ns: (String, String),
    file: PathBuf,
    run_dir: PathBuf,
    _dir: TempDir,
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.serving.take());
        self.sw.stop();
    }
}

/// Starts the switch on `t1`/`t2`, moves them into two namespaces with
/// addresses 10.`subnet`.0.1 and .2; the watcher as `flowswitch run` has
/// it, but reloads on file changes only with `watch_file` (a test of
/// `ctl reload` must be the one that reloads).
fn rig(tag: &str, subnet: u8, watch_file: bool) -> Rig {
    let dir = std::env::temp_dir().join(format!("fs-rc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let mut net = Net::new(tag);
    let (t1, t2) = (net.ifname(1), net.ifname(2));
    let file = dir.0.join("rc.yaml");
    std::fs::write(&file, switch_yaml(&t1, &t2, false)).unwrap();
    let (sw, switchd) =
        RunningSwitch::controlled(&file, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let run_dir = dir.0.join("run");
    let serving = switchd
        .serve(
            &run_dir,
            Some(WatchOptions {
                file: watch_file,
                ..WatchOptions::default()
            }),
        )
        .unwrap();
    let (n1, n2) = (net.ns(1), net.ns(2));
    net.attach(&t1, &n1, "02:00:00:00:1c:01");
    net.attach(&t2, &n2, "02:00:00:00:1c:02");
    net.addr(&n1, &t1, &format!("10.{subnet}.0.1/24"));
    net.addr(&n2, &t2, &format!("10.{subnet}.0.2/24"));
    Rig {
        serving: Some(serving),
        switchd,
        sw,
        net,
        ns: (n1, n2),
        file,
        run_dir,
        _dir: dir,
    }
}

impl Rig {
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flowswitch"))
            .arg("ctl")
            .arg("--run-dir")
            .arg(&self.run_dir)
            .arg("rc")
            .args(args)
            .output()
            .expect("run flowswitch ctl")
    }

    /// `ctl --json VERB`, checked.
    fn ctl_json(&self, verb: &str) -> Value {
        let o = self.ctl(&["--json", verb]);
        assert!(
            o.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{verb}: {e}"))
    }

    /// Packets of flow `name` in `ctl dump-flows`.
    fn flow_packets(&self, name: &str) -> Option<u64> {
        self.ctl_json("dump-flows")
            .as_array()?
            .iter()
            .find(|f| f["name"] == name)?["packets"]
            .as_u64()
    }

    fn t(&self, i: usize) -> String {
        self.net.ifname(i)
    }
}

/// Replaces `path` with `text` atomically (a rename), as editors do: the
/// file watcher never reads a half-written file.
fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).expect("write the file");
    std::fs::rename(&tmp, path).expect("rename the file");
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ctl_counts_pings_shows_tap_ports_and_reloads() {
    if !prerequisites("ctl_counts_pings_shows_tap_ports_and_reloads") {
        return;
    }
    let r = rig("rp", 83, false);
    assert!(
        socket_path(&r.run_dir, "rc").exists(),
        "the socket is served"
    );
    // Frames the root namespace sent on a TAP before it moved may have
    // met the other one down (counted as tx drops): the check is that
    // the pings drop nothing.
    let before = r.ctl_json("dump-ports");
    let tx_drops = |v: &Value, i: usize| v[i]["total"]["tx_drops"].as_u64().unwrap();
    // `ping` sends 3 echo requests, each answered.
    assert!(ping(&r.ns.0, "10.83.0.2", &[]), "ping through the switch");
    // The tx side is counted after the frames went out: wait for it.
    assert!(wait_for(|| r.flow_packets("ping21") == Some(3)));
    assert_eq!(r.flow_packets("ping12"), Some(3));
    assert!(r.flow_packets("fwd12").unwrap() >= 1, "ARP goes by fwd12");

    let ports_v = r.ctl_json("dump-ports");
    let ports = ports_v.as_array().unwrap();
    assert_eq!(ports.len(), 2);
    for (i, (p, name)) in ports.iter().zip([r.t(1), r.t(2)]).enumerate() {
        assert_eq!(p["name"], name.as_str());
        assert_eq!(p["up"], true);
        let t = &p["total"];
        assert!(t["rx_packets"].as_u64().unwrap() >= 4, "{p}");
        assert!(t["tx_packets"].as_u64().unwrap() >= 4, "{p}");
        assert_eq!(tx_drops(&ports_v, i), tx_drops(&before, i), "{p}");
        let queues = p["queues"].as_array().unwrap();
        assert_eq!(queues.len(), 2, "{p}");
        let rx: u64 = queues
            .iter()
            .map(|q| q["rx_packets"].as_u64().unwrap())
            .sum();
        assert_eq!(rx, t["rx_packets"].as_u64().unwrap(), "{p}");
    }
    let text = out(&r.ctl(&["dump-ports"]));
    assert!(text.contains(&format!("port 1 {}: rx ", r.t(1))), "{text}");

    // A changed file: `ctl reload` installs it; the unchanged flows keep
    // their counters and go on counting.
    write_file(&r.file, &switch_yaml(&r.t(1), &r.t(2), true));
    let o = r.ctl(&["reload"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out(&o).contains("4 kept their counters, 1 new"),
        "{}",
        out(&o)
    );
    assert_eq!(r.flow_packets("extra"), Some(0));
    assert_eq!(r.flow_packets("ping12"), Some(3));
    assert!(ping(&r.ns.0, "10.83.0.2", &[]), "ping after the reload");
    assert!(wait_for(|| r.flow_packets("ping21") == Some(6)));
    assert_eq!(r.flow_packets("ping12"), Some(6));
    // A port added to the file: the reload creates its TAP; removed
    // again: the TAP goes.
    let exists = |d: &str| Path::new(&format!("/sys/class/net/{d}")).exists();
    let three = switch_yaml(&r.t(1), &r.t(2), true).replace(
        "tables:",
        &format!("  - {{id: 3, name: {}}}\ntables:", r.t(3)),
    );
    write_file(&r.file, &three);
    let o = r.ctl(&["reload"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(exists(&r.t(3)), "port 3's TAP");
    let ports = r.ctl_json("dump-ports");
    let ids: Vec<u64> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ports}");
    assert!(ids.contains(&3), "{ports}");
    assert_eq!(r.flow_packets("ping12"), Some(6), "counters kept");
    // A port whose settings changed is refused, and nothing changes.
    let two = |q: &str| format!("name: {}, offload: true, queues: {q}", r.t(2));
    write_file(&r.file, &three.replace(&two("2"), &two("1")));
    let o = r.ctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("changed its settings"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    write_file(&r.file, &switch_yaml(&r.t(1), &r.t(2), false));
    let o = r.ctl(&["reload"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(wait_for(|| !exists(&r.t(3))), "port 3's TAP removed");
    assert_eq!(r.ctl_json("dump-ports").as_array().unwrap().len(), 2);
    assert!(
        ping(&r.ns.0, "10.83.0.2", &[]),
        "ping after the port changes"
    );
    assert!(wait_for(|| r.flow_packets("ping21") == Some(9)));
}

/// iperf3's client report, with the server's side (`--get-server-output`
/// not needed: `end.sum_received` is the server's count).
struct Iperf {
    sent: u64,
    received: u64,
    retransmits: u64,
    seconds: f64,
}

fn iperf_report(json: &[u8]) -> Result<Iperf, String> {
    let v: Value = serde_json::from_slice(json).map_err(|e| {
        format!(
            "iperf3 JSON: {e}: {}",
            String::from_utf8_lossy(json)
                .chars()
                .take(2000)
                .collect::<String>()
        )
    })?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    let end = &v["end"];
    let num = |x: &Value, what: &str| x.as_u64().ok_or_else(|| format!("no {what} in {end}"));
    Ok(Iperf {
        sent: num(&end["sum_sent"]["bytes"], "sum_sent.bytes")?,
        received: num(&end["sum_received"]["bytes"], "sum_received.bytes")?,
        retransmits: num(&end["sum_sent"]["retransmits"], "sum_sent.retransmits")?,
        seconds: end["sum_received"]["seconds"].as_f64().unwrap_or(0.0),
    })
}

/// Reloads through the socket `count` times, one every 100 ms, the file
/// alternating between its two versions, each reload checked; stops early
/// (returning how many were done) if `client_alive` turns false.
fn reload_storm(r: &Rig, count: u64, client_alive: impl Fn() -> bool) -> u64 {
    let versions = [
        switch_yaml(&r.t(1), &r.t(2), true),
        switch_yaml(&r.t(1), &r.t(2), false),
    ];
    let mut client = Client::connect(&socket_path(&r.run_dir, "rc")).expect("connect");
    let mut next = Instant::now();
    for done in 0..count {
        if !client_alive() {
            return done;
        }
        let extra = done % 2 == 0;
        write_file(&r.file, &versions[(done % 2) as usize]);
        let resp = client
            .request(&Request::Reload { file: None })
            .expect("reload request");
        assert!(resp.ok, "reload {done}: {:?}", resp.error);
        let flows = resp.result.as_ref().and_then(|x| x["flows"].as_u64());
        assert_eq!(flows, Some(if extra { 5 } else { 4 }), "{resp:?}");
        next += Duration::from_millis(100);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    count
}

#[test]
fn reload_storm_during_iperf3() {
    if !prerequisites_with("reload_storm_during_iperf3", &["iperf3"]) {
        return;
    }
    let r = rig("rs", 84, true);
    assert!(ping(&r.ns.0, "10.84.0.2", &[]), "ping through the switch");
    let port = 5201 + (std::process::id() % 1000) as u16;
    let port_s = port.to_string();
    let server = Command::new("ip")
        .args([
            "netns", "exec", &r.ns.1, "iperf3", "-s", "-1", "-p", &port_s,
        ])
        .args(["-B", "10.84.0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iperf3 -s");
    let _server = ChildGuard(Some(server));
    // The server listens once its port answers (a refused connection
    // means not yet).
    let listening = || {
        Command::new("ip")
            .args(["netns", "exec", &r.ns.1, "ss", "-Htln"])
            .arg(format!("sport = :{port}"))
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    assert!(wait_for(listening), "iperf3 server not listening");
    let before = r.sw.snapshot();
    let client = Command::new("ip")
        .args(["netns", "exec", &r.ns.0, "iperf3", "-c", "10.84.0.2"])
        // Longer than the storm, which must end while it still runs.
        .args(["-p", &port_s, "-t", "36", "-J"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iperf3 -c");
    let pid = client.id();
    let mut guard = ChildGuard(Some(client));
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    // 300 reloads, one every 100 ms: 30 s.
    // Checked transfers (n2 -> n1, 32 MiB each) for as long as the storm.
    let stop = Arc::new(AtomicBool::new(false));
    let checked = {
        let (n1, n2, stop) = (r.ns.0.clone(), r.ns.1.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) {
                transfer(&n2, &n1, "10.84.0.1", 6100 + n % 50, 32 << 20);
                n += 1;
            }
            n
        })
    };
    let reloads = reload_storm(&r, 300, alive);
    let storm_covered = alive();
    stop.store(true, Ordering::Relaxed);
    let transfers = checked.join().expect("a checked transfer failed");
    let client = guard.0.take().unwrap();
    let o = client.wait_with_output().expect("iperf3 -c");
    assert!(
        o.status.success(),
        "iperf3 client: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let rep = iperf_report(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    let stats = r.switchd.stats();
    eprintln!(
        "reload storm: {reloads} reloads through the socket ({} in all, {} failed), \
         {transfers} checked transfers of 32 MiB, \
         iperf3 {:.1} s: {} bytes sent, {} received, {} retransmits, {:.2} Gbit/s",
        stats.reloads,
        stats.failed_reloads,
        rep.seconds,
        rep.sent,
        rep.received,
        rep.retransmits,
        rep.received as f64 * 8.0 / rep.seconds.max(1e-9) / 1e9
    );
    assert_eq!(reloads, 300, "the client ended during the storm");
    assert!(storm_covered, "the client ended during the storm");
    assert_eq!(stats.failed_reloads, 0);
    assert!(rep.received > 0 && rep.received <= rep.sent);
    assert!(transfers >= 1);
    // What came in on one port went out on the other, frame for frame
    // and byte for byte (both ports take super-frames: nothing is
    // resegmented). The tx side is counted just after the frames left.
    let delta = |a: &datapath::dp::stats::Snapshot, id: u32| {
        let now = a.ports.iter().find(|p| p.id == id).unwrap().total;
        let was = before.ports.iter().find(|p| p.id == id).unwrap().total;
        (
            now.rx_packets - was.rx_packets,
            now.rx_bytes - was.rx_bytes,
            now.tx_packets - was.tx_packets,
            now.tx_bytes - was.tx_bytes,
        )
    };
    let balanced = |s: &datapath::dp::stats::Snapshot| {
        let (p1, p2) = (delta(s, 1), delta(s, 2));
        (p1.0, p1.1, p2.0, p2.1) == (p2.2, p2.3, p1.2, p1.3)
    };
    let sw = &r.sw;
    assert!(
        wait_for(|| balanced(&sw.snapshot())),
        "port 1 {:?}, port 2 {:?} (rx packets, rx bytes, tx packets, tx bytes)",
        delta(&sw.snapshot(), 1),
        delta(&sw.snapshot(), 2)
    );
    let snap = sw.snapshot();
    eprintln!(
        "switch during the storm: port 1 {:?}, port 2 {:?} (rx packets, rx bytes, tx packets, tx bytes)",
        delta(&snap, 1),
        delta(&snap, 2)
    );
    // (Frames the root namespace sent on a TAP before it moved may have
    // met the other one down: the storm is measured against `before`.)
    for (p, b) in snap.ports.iter().zip(&before.ports) {
        assert_eq!(p.id, b.id);
        assert_eq!(p.total.tx_drops, b.total.tx_drops, "port {} tx drops", p.id);
        assert_eq!(p.total.rx_drops, b.total.rx_drops, "port {} rx drops", p.id);
    }
    // The flows drop nothing and the table has no miss: no drop counter
    // may have moved during the storm, for any reason.
    let drops = |s: &datapath::dp::stats::Snapshot| -> Vec<(String, u64)> {
        s.drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name().to_string(), *n))
            .collect()
    };
    assert_eq!(drops(&snap), drops(&before), "drops during the storm");
    // The stream went through the flows: fwd12 counted its segments
    // across every generation.
    assert!(r.flow_packets("fwd12").unwrap() > 1000);
}
